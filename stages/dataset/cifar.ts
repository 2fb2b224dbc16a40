// CIFAR-10 and CIFAR-100, binary version, from the extracted folder or straight from the
// downloaded .tar.gz. A CIFAR-100 record is 3,074 bytes (coarse label, fine label, 1,024 red,
// 1,024 green, 1,024 blue bytes, row-major 32x32); a CIFAR-10 record is 3,073 (one label first).
// Records are converted once from planar RGB to HWC into one buffer that samples are views of.

import * as fs from 'fs';
import * as path from 'path';
import { readTarMembers } from '../../common/tarGz';
import { MemorySource } from './memorySource';
import { DatasetError } from './source';

export type CifarVariant = 'cifar10' | 'cifar100';
export type CifarSplit = 'train' | 'test';
export type CifarLabels = 'fine' | 'coarse';

interface Layout {
  folder: string;
  archive: string;
  labelBytes: number;
  files: Record<CifarSplit, string[]>;
  namesFile: (labels: CifarLabels) => string;
  classes: (labels: CifarLabels) => number;
}

export const CIFAR_LAYOUTS: Record<CifarVariant, Layout> = {
  cifar100: {
    folder: 'cifar-100-binary',
    archive: 'cifar-100-binary.tar.gz',
    labelBytes: 2,
    files: { train: ['train.bin'], test: ['test.bin'] },
    namesFile: (labels) => `${labels}_label_names.txt`,
    classes: (labels) => (labels === 'fine' ? 100 : 20),
  },
  cifar10: {
    folder: 'cifar-10-batches-bin',
    archive: 'cifar-10-binary.tar.gz',
    labelBytes: 1,
    files: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'] },
    namesFile: () => 'batches.meta.txt',
    classes: () => 10,
  },
};

const PIXELS = 32 * 32;

export interface CifarOptions {
  variant: CifarVariant;
  /** The extracted folder (or a folder holding it or the archive), or the .tar.gz itself. */
  path: string;
  split: CifarSplit;
  /** CIFAR-100 only: fine (100 classes, default) or coarse (20 superclasses). */
  labels?: CifarLabels;
}

/** Decodes whole records; `where` names the file in errors. */
export function decodeCifarRecords(
  bytes: Uint8Array,
  variant: CifarVariant,
  labels: CifarLabels,
  where: string,
): { pixels: Uint8Array; labels: Uint8Array } {
  const layout = CIFAR_LAYOUTS[variant];
  const recordBytes = layout.labelBytes + 3 * PIXELS;
  if (bytes.length === 0) throw new DatasetError(where, `is empty; expected ${recordBytes.toLocaleString('en-US')}-byte ${variant} records`);
  if (bytes.length % recordBytes !== 0) {
    throw new DatasetError(
      where,
      `${bytes.length.toLocaleString('en-US')} bytes is not a whole number of ${recordBytes.toLocaleString('en-US')}-byte ${variant} records ` +
        `(${Math.floor(bytes.length / recordBytes)} records and ${bytes.length % recordBytes} bytes left over); the file is truncated or not ${variant} binary`,
    );
  }
  const count = bytes.length / recordBytes;
  const classes = layout.classes(labels);
  const labelOffset = variant === 'cifar100' && labels === 'fine' ? 1 : 0;
  const pixels = new Uint8Array(count * 3 * PIXELS);
  const out = new Uint8Array(count);
  for (let r = 0; r < count; r++) {
    const record = r * recordBytes;
    const label = bytes[record + labelOffset];
    if (label >= classes) throw new DatasetError(where, `record ${r} has ${labels} label ${label}, expected 0..${classes - 1}`);
    out[r] = label;
    const red = record + layout.labelBytes;
    const green = red + PIXELS;
    const blue = green + PIXELS;
    let o = r * 3 * PIXELS;
    for (let p = 0; p < PIXELS; p++) {
      pixels[o++] = bytes[red + p];
      pixels[o++] = bytes[green + p];
      pixels[o++] = bytes[blue + p];
    }
  }
  return { pixels, labels: out };
}

function parseNames(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

type Location = { kind: 'folder'; folder: string } | { kind: 'archive'; archive: string };

function locate(options: CifarOptions): Location {
  const layout = CIFAR_LAYOUTS[options.variant];
  const given = options.path;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(given);
  } catch {
    throw new DatasetError(given, `no such file or folder (expected the ${layout.folder}/ folder or ${layout.archive})`);
  }
  if (stat.isFile()) return { kind: 'archive', archive: given };
  const firstFile = layout.files[options.split][0];
  if (fs.existsSync(path.join(given, firstFile))) return { kind: 'folder', folder: given };
  if (fs.existsSync(path.join(given, layout.folder, firstFile))) return { kind: 'folder', folder: path.join(given, layout.folder) };
  if (fs.existsSync(path.join(given, layout.archive))) return { kind: 'archive', archive: path.join(given, layout.archive) };
  throw new DatasetError(
    given,
    `found neither ${firstFile}, ${layout.folder}/${firstFile} nor ${layout.archive} here; ` + `download it with 'vitpeft data fetch ${options.variant}' or point at the folder that holds it`,
  );
}

async function readMembers(location: Location, wanted: string[], namesFile: string): Promise<{ parts: Array<[string, Buffer]>; names?: string }> {
  if (location.kind === 'folder') {
    const parts: Array<[string, Buffer]> = wanted.map((name) => {
      const file = path.join(location.folder, name);
      try {
        return [file, fs.readFileSync(file)];
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new DatasetError(file, code === 'ENOENT' ? 'no such file' : `cannot read (${code})`);
      }
    });
    const namesPath = path.join(location.folder, namesFile);
    return { parts, names: fs.existsSync(namesPath) ? fs.readFileSync(namesPath, 'utf8') : undefined };
  }
  const want = new Set([...wanted, namesFile]);
  const members = await readTarMembers(location.archive, (name) => want.has(path.posix.basename(name)), { stopAfter: want.size });
  const byBase = new Map([...members].map(([name, bytes]) => [path.posix.basename(name), { name, bytes }]));
  const parts: Array<[string, Buffer]> = wanted.map((base) => {
    const member = byBase.get(base);
    if (!member) throw new DatasetError(location.archive, `archive has no member named ${base}; is it the binary version?`);
    return [`${location.archive} (member ${member.name})`, member.bytes];
  });
  return { parts, names: byBase.get(namesFile)?.bytes.toString('utf8') };
}

export async function openCifar(options: CifarOptions): Promise<MemorySource> {
  const layout = CIFAR_LAYOUTS[options.variant];
  const labels = options.variant === 'cifar100' ? (options.labels ?? 'fine') : 'fine';
  if (options.variant === 'cifar10' && options.labels === 'coarse') throw new DatasetError(options.path, 'CIFAR-10 has no coarse labels');
  const location = locate(options);
  const { parts, names } = await readMembers(location, layout.files[options.split], layout.namesFile(labels));
  const decoded = parts.map(([where, bytes]) => decodeCifarRecords(bytes, options.variant, labels, where));
  const count = decoded.reduce((sum, part) => sum + part.labels.length, 0);
  let pixels: Uint8Array;
  let allLabels: Uint8Array;
  if (decoded.length === 1) {
    ({ pixels, labels: allLabels } = decoded[0]);
  } else {
    pixels = new Uint8Array(count * 3 * PIXELS);
    allLabels = new Uint8Array(count);
    let at = 0;
    for (const part of decoded) {
      pixels.set(part.pixels, at * 3 * PIXELS);
      allLabels.set(part.labels, at);
      at += part.labels.length;
    }
  }
  const classes = layout.classes(labels);
  let classNames: string[] | undefined = names === undefined ? undefined : parseNames(names);
  if (classNames && classNames.length !== classes) {
    const where = location.kind === 'folder' ? path.join(location.folder, layout.namesFile(labels)) : location.archive;
    throw new DatasetError(where, `${layout.namesFile(labels)} lists ${classNames.length} names, expected ${classes}`);
  }
  const where = location.kind === 'folder' ? location.folder : location.archive;
  return new MemorySource({
    description: `${options.variant} ${where} (${options.split}${options.variant === 'cifar100' ? `, ${labels} labels` : ''})`,
    pixels,
    shape: [count, 32, 32, 3],
    labels: allLabels,
    numClasses: classes,
    classNames,
  });
}
