// Files are written whole or not at all: data goes to a temporary file in the target's folder,
// is flushed to disk, then renamed over the target (rename is atomic within a file system).
// A process killed mid-write leaves only a dot-named temporary file, which removeStaleTemporaries
// clears on the next resume.

import * as fs from 'fs';
import * as path from 'path';

const TEMPORARY = /^\..+\.\d+\.\d+\.tmp$/;

/** Writes through `write(fd)` into a temporary file, fsyncs it and renames it over `target`. */
export function writeAtomically(target: string, write: (fd: number) => void): void {
  const folder = path.dirname(target);
  fs.mkdirSync(folder, { recursive: true });
  const temporary = path.join(folder, `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(temporary, 'w');
  try {
    write(fd);
    fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(temporary, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(temporary, target);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}

export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  writeAtomically(target, (fd) => fs.writeFileSync(fd, data));
}

/** Removes temporary files that a killed writer left in `folder`; returns their names. */
export function removeStaleTemporaries(folder: string): string[] {
  if (!fs.existsSync(folder)) return [];
  const stale = fs.readdirSync(folder).filter((name) => TEMPORARY.test(name));
  for (const name of stale) fs.rmSync(path.join(folder, name), { force: true });
  return stale;
}
