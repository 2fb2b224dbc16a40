// Files are written whole or not at all: data goes to a temporary file in the target's folder,
// is flushed to disk, then renamed over the target (rename is atomic within a file system).

import * as fs from 'fs';
import * as path from 'path';

export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const folder = path.dirname(target);
  fs.mkdirSync(folder, { recursive: true });
  const temporary = path.join(folder, `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(temporary, 'w');
  try {
    fs.writeFileSync(fd, data);
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
