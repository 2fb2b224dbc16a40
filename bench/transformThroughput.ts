// Throughput of the paper's CIFAR train transform, 32x32 -> RandomResizedCrop(224, scale 0.08-1,
// ratio 3/4-4/3) + horizontal flip (p 0.5) + normalise (mean = std = 0.5), on whole batches with
// TensorFlow.js ops: crop boxes are drawn in JavaScript with torchvision's sampling rule, and one
// cropAndResize per batch crops, resizes (bilinear) and flips (a flipped box has x1 > x2).
//
// A stand-in until the dataset stage's own benchmark (bench/dataset.ts, benchDataset(), on the
// dataset branch) is merged: bench/cases.ts calls only measureCifarTrainTransform, the one place
// to swap. Its bilinear sampling is TensorFlow's (pixel centres at corners), not PIL's, which
// does not change the cost being measured.

import { randomFunction } from '../common/random';
import * as tf from '@tensorflow/tfjs';
import { Timing, timeRuns } from './measure';

export interface TransformThroughputOptions {
  readonly batchSize: number;
  readonly warmup: number;
  readonly runs: number;
  /** Side of the output images (default 224). */
  readonly size?: number;
  /** Synthetic 32x32 source images to draw from (default 1024). */
  readonly sourceImages?: number;
}


/** torchvision RandomResizedCrop.get_params: [top, left, height, width] of the crop. */
function cropParams(next: () => number, height: number, width: number, scale: [number, number], ratio: [number, number]): [number, number, number, number] {
  const area = height * width;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * (scale[0] + (scale[1] - scale[0]) * next());
    const aspect = Math.exp(logRatio[0] + (logRatio[1] - logRatio[0]) * next());
    const w = Math.round(Math.sqrt(targetArea * aspect));
    const h = Math.round(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return [Math.floor(next() * (height - h + 1)), Math.floor(next() * (width - w + 1)), h, w];
    }
  }
  const inRatio = width / height;
  const w = inRatio < ratio[0] ? width : inRatio > ratio[1] ? Math.round(height * ratio[1]) : width;
  const h = inRatio < ratio[0] ? Math.round(width / ratio[0]) : inRatio > ratio[1] ? height : height;
  return [Math.floor((height - h) / 2), Math.floor((width - w) / 2), h, w];
}

/** Images per second of the train transform on the backend in use (median and best of `runs` batches). */
export async function measureCifarTrainTransform(options: TransformThroughputOptions): Promise<Timing> {
  const size = options.size ?? 224;
  const count = options.sourceImages ?? 1024;
  const side = 32;
  const next = randomFunction(2024);
  const pixels = new Float32Array(count * side * side * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(next() * 256);
  const source = tf.tensor4d(pixels, [count, side, side, 3]);
  const batch = () => {
    const boxes = new Float32Array(options.batchSize * 4);
    const indices = new Int32Array(options.batchSize);
    for (let i = 0; i < options.batchSize; i++) {
      indices[i] = Math.floor(next() * count);
      const [top, left, h, w] = cropParams(next, side, side, [0.08, 1], [3 / 4, 4 / 3]);
      const x1 = left / (side - 1);
      const x2 = (left + w - 1) / (side - 1);
      const flip = next() < 0.5;
      boxes.set([top / (side - 1), flip ? x2 : x1, (top + h - 1) / (side - 1), flip ? x1 : x2], 4 * i);
    }
    const images = tf.tidy(() => {
      const crops = tf.image.cropAndResize(source, tf.tensor2d(boxes, [options.batchSize, 4]), tf.tensor1d(indices, 'int32'), [size, size], 'bilinear');
      return tf.sub(tf.mul(crops, 1 / 127.5), 1); // (v / 255 - 0.5) / 0.5
    });
    // Node's backends (wasm, tensorflow, cpu) run each op to completion when it is called, so the
    // batch is complete here; reading it back would only add a copy the training step never makes.
    images.dispose();
  };
  try {
    return await timeRuns(batch, options.warmup, options.runs);
  } finally {
    source.dispose();
  }
}
