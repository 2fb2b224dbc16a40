// IDX files (MNIST, Fashion-MNIST), gzipped or not: a big-endian magic 0x0000TTDD (TT = 0x08 for
// unsigned bytes, DD = number of dimensions), DD big-endian uint32 sizes, then the data. Images are
// 0x00000803 [N, rows, cols]; labels 0x00000801 [N].

import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { MemorySource } from './memorySource';
import { DatasetError } from './source';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;

/** Where Debian's dataset-fashion-mnist package installs the files. */
export const DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_FILES = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
} as const;

/** Larger than any IDX file in use (EMNIST's largest is about 550 MB); a gzip that inflates past it is refused. */
export const IDX_MAX_BYTES = 2 ** 30;

/** The file's bytes, gunzipped when they start with the gzip magic (at most maxBytes of them). */
export function readMaybeGzipped(file: string, maxBytes = IDX_MAX_BYTES): Buffer {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DatasetError(file, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, expected a file' : `cannot read (${code})`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return zlib.gunzipSync(bytes, { maxOutputLength: maxBytes });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new DatasetError(file, `decompresses to more than ${maxBytes.toLocaleString('en-US')} bytes, more than any IDX file holds; refusing it`);
      }
      throw new DatasetError(file, `cannot decompress (${(error as Error).message}); the file is truncated or corrupt`);
    }
  }
  return bytes;
}

/** Parses an unsigned-byte IDX file with the expected number of dimensions. */
export function parseIdx(bytes: Uint8Array, dimensions: number, where: string): { shape: number[]; data: Uint8Array } {
  const expectedMagic = 0x800 + dimensions;
  const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
  if (bytes.length < 4) throw new DatasetError(where, `file is ${bytes.length} bytes, too short for an IDX magic number`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== expectedMagic) {
    const what = dimensions === 3 ? 'images' : 'labels';
    throw new DatasetError(where, `IDX magic number is ${hex(magic)}, expected ${hex(expectedMagic)} (unsigned-byte ${what}, ${dimensions} dimension${dimensions > 1 ? 's' : ''})`);
  }
  const headerBytes = 4 + 4 * dimensions;
  if (bytes.length < headerBytes) throw new DatasetError(where, `file is ${bytes.length} bytes, too short for its ${headerBytes}-byte IDX header; it is truncated`);
  const shape: number[] = [];
  for (let d = 0; d < dimensions; d++) shape.push(view.getUint32(4 + 4 * d, false));
  const dataBytes = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== headerBytes + dataBytes) {
    throw new DatasetError(
      where,
      `IDX header promises [${shape.join(', ')}] = ${dataBytes} data bytes but the file holds ${bytes.length - headerBytes}; ` +
        (bytes.length < headerBytes + dataBytes ? 'it is truncated' : 'it has trailing bytes'),
    );
  }
  return { shape, data: bytes.subarray(headerBytes) };
}

export interface IdxOptions {
  images: string;
  labels: string;
  description?: string;
  numClasses?: number;
  classNames?: readonly string[];
}

export function openIdx(options: IdxOptions): MemorySource {
  const images = parseIdx(readMaybeGzipped(options.images), 3, options.images);
  const labels = parseIdx(readMaybeGzipped(options.labels), 1, options.labels);
  const [count, rows, cols] = images.shape;
  if (labels.shape[0] !== count) {
    throw new DatasetError(options.labels, `holds ${labels.shape[0]} labels but ${options.images} holds ${count} images`);
  }
  if (options.numClasses !== undefined) {
    const bad = labels.data.findIndex((label) => label >= options.numClasses!);
    if (bad >= 0) throw new DatasetError(options.labels, `label ${bad} is ${labels.data[bad]}, expected 0..${options.numClasses - 1}`);
  }
  return new MemorySource({
    description: options.description ?? `idx ${options.images} + ${options.labels}`,
    pixels: images.data,
    shape: [count, rows, cols, 1],
    labels: labels.data,
    numClasses: options.numClasses,
    classNames: options.classNames,
  });
}

/** The first existing of NAME.gz and NAME in the folder. */
function findIdxFile(folder: string, name: string): string | undefined {
  for (const candidate of [`${name}.gz`, name]) {
    const file = path.join(folder, candidate);
    if (fs.existsSync(file)) return file;
  }
  return undefined;
}

/**
 * Fashion-MNIST from `folder`, or else from Debian's package folder, or else from the download
 * cache; the error lists every folder that was tried.
 */
export function openFashionMnist(split: 'train' | 'test', folders: readonly string[]): MemorySource {
  const names = FASHION_MNIST_FILES[split];
  for (const folder of folders) {
    const images = findIdxFile(folder, names.images);
    const labels = findIdxFile(folder, names.labels);
    if (images && labels) {
      return openIdx({ images, labels, numClasses: 10, classNames: FASHION_MNIST_CLASSES, description: `fashion-mnist ${folder} (${split})` });
    }
  }
  throw new DatasetError(
    folders.join(', '),
    `no Fashion-MNIST ${names.images}[.gz] and ${names.labels}[.gz] in ${folders.length > 1 ? 'any of these folders' : 'this folder'}; ` +
      `run 'vitpeft data fetch fashion-mnist', install Debian's dataset-fashion-mnist, or give the folder: fashion-mnist:DIR:${split}`,
  );
}
