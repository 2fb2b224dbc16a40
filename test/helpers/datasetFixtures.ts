// Small dataset files built inside the tests: CIFAR records, IDX files, tar archives, temp folders.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const created: string[] = [];
process.on('exit', () => {
  for (const folder of created) fs.rmSync(folder, { recursive: true, force: true });
});

/** A fresh folder under the system's temporary folder, removed when the test process exits. */
export function tempFolder(prefix = 'vitpeft-data-'): string {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(folder);
  return folder;
}

/** Pixel value of record r, channel c, row y, column x: distinct and easy to predict. */
export function knownPixel(r: number, c: number, y: number, x: number): number {
  return (r * 37 + c * 101 + y * 7 + x * 3) % 256;
}

/** CIFAR-100 records (coarse, fine, planar R, G, B) with knownPixel values. */
export function cifar100Bytes(labels: Array<[coarse: number, fine: number]>): Buffer {
  const out = Buffer.alloc(labels.length * 3074);
  labels.forEach(([coarse, fine], r) => {
    const base = r * 3074;
    out[base] = coarse;
    out[base + 1] = fine;
    for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[base + 2 + c * 1024 + y * 32 + x] = knownPixel(r, c, y, x);
  });
  return out;
}

/** CIFAR-10 records (label, planar R, G, B) with knownPixel values. */
export function cifar10Bytes(labels: number[], firstRecord = 0): Buffer {
  const out = Buffer.alloc(labels.length * 3073);
  labels.forEach((label, r) => {
    const base = r * 3073;
    out[base] = label;
    for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[base + 1 + c * 1024 + y * 32 + x] = knownPixel(firstRecord + r, c, y, x);
  });
  return out;
}

export function idxBytes(magic: number, shape: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header.writeUInt32BE(magic, 0);
  shape.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, '0') + '\0';
}

/** A ustar archive of regular files (long names via a GNU 'L' entry), ended by two zero blocks. */
export function tarBytes(entries: Array<[name: string, data: Buffer]>): Buffer {
  const blocks: Buffer[] = [];
  const header = (name: string, size: number, type: string): Buffer => {
    const block = Buffer.alloc(512);
    block.write(name.slice(0, 100), 0, 'utf8');
    block.write(octal(0o644, 8), 100, 'ascii');
    block.write(octal(0, 8), 108, 'ascii');
    block.write(octal(0, 8), 116, 'ascii');
    block.write(octal(size, 12), 124, 'ascii');
    block.write(octal(0, 12), 136, 'ascii');
    block.write('        ', 148, 'ascii');
    block.write(type, 156, 'ascii');
    block.write('ustar\0', 257, 'ascii');
    block.write('00', 263, 'ascii');
    let sum = 0;
    for (const byte of block) sum += byte;
    block.write(octal(sum, 7) + ' ', 148, 'ascii');
    return block;
  };
  const pad = (data: Buffer) => Buffer.alloc((512 - (data.length % 512)) % 512);
  for (const [name, data] of entries) {
    if (Buffer.byteLength(name) > 100) {
      const longName = Buffer.from(`${name}\0`);
      blocks.push(header('././@LongLink', longName.length, 'L'), longName, pad(longName));
    }
    blocks.push(header(name, data.length, '0'), data, pad(data));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}
