// Pixel normalisation: uint8 images to float32 (value / 255 - mean) / std per channel.

import * as tf from '@tensorflow/tfjs-core';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export function normalizeImages(images: tf.Tensor4D, mean: readonly number[], std: readonly number[]): tf.Tensor4D {
  const channels = images.shape[3];
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(`normalize: images have ${channels} channels but mean has ${mean.length} and std ${std.length} values`);
  }
  if (std.some((s) => !(s > 0))) throw new Error(`normalize: every std must be positive, got [${std.join(', ')}]`);
  return tf.tidy(() => {
    // (v/255 - m)/s = v * (1/(255 s)) - m/s: one multiply and one subtract per pixel.
    const scale = tf.tensor1d(std.map((s) => 1 / (255 * s)));
    const shift = tf.tensor1d(mean.map((m, c) => m / std[c]));
    return tf.sub(tf.mul(tf.cast(images, 'float32'), scale), shift) as tf.Tensor4D;
  });
}

/** The same mapping as a lookup table, table[c * 256 + v] = (v/255 - mean[c]) / std[c] in float32. */
export function normalizationTable(mean: readonly number[], std: readonly number[]): Float32Array {
  if (mean.length !== std.length) throw new Error(`normalize: mean has ${mean.length} values but std has ${std.length}`);
  if (std.some((s) => !(s > 0))) throw new Error(`normalize: every std must be positive, got [${std.join(', ')}]`);
  if (mean.some((m) => !Number.isFinite(m))) throw new Error(`normalize: every mean must be finite, got [${mean.join(', ')}]`);
  const table = new Float32Array(mean.length * 256);
  for (let c = 0; c < mean.length; c++) for (let v = 0; v < 256; v++) table[c * 256 + v] = (v / 255 - mean[c]) / std[c];
  return table;
}
