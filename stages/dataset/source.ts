// What every dataset source offers: random access to labelled uint8 images. Sources hand out their
// native channels (1 for MNIST-like data, 3 for colour); the batch writer turns grey into RGB.

import { LocatedError } from '../../common/errors';

/** One image, row-major HWC uint8 (a view into the source's memory where it can be). */
export interface Sample {
  readonly pixels: Uint8Array;
  readonly height: number;
  readonly width: number;
  /** 1 (grey), 3 (RGB); 2 and 4 (with alpha) are accepted and the alpha dropped. */
  readonly channels: number;
  /** Class index, or -1 for an unlabelled image. */
  readonly label: number;
}

export interface DatasetSource {
  /** Where the data came from, for logs and metadata: 'cifar100 /data/cifar-100-binary (test)'. */
  readonly description: string;
  readonly size: number;
  /** Number of classes the labels index into (0 for unlabelled data). */
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  /** [height, width, channels] when every image has it. */
  readonly imageShape?: readonly [number, number, number];
  /** The label of image `index`, known without decoding it. */
  labelOf(index: number): number;
  /**
   * Image `index` (0 <= index < size). Resolves to null only when the source was told to skip
   * unreadable images and this one could not be read (it has already warned).
   */
  read(index: number): Promise<Sample | null>;
}

/** Every problem with dataset input, naming the file or folder it is about. */
export class DatasetError extends LocatedError {}

export function checkIndex(source: Pick<DatasetSource, 'size' | 'description'>, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= source.size) {
    throw new RangeError(`${source.description}: index ${index} is outside [0, ${source.size})`);
  }
}
