// The Euclidean norm along one axis as sqrt(sum(x^2)). tf.norm computes |x|^2 with the Pow kernel,
// which the wasm backend runs as a scalar loop (about ten times slower than Square). The norms agree
// with tf.norm's to the last bit but for a few (9 of 22,776 in a check on wasm: its Pow is not always
// correctly rounded), so the k-NN evaluation (stages/evaluator/knn.ts) keeps tf.norm and its numbers;
// DINO's training uses these.

import * as tf from '@tensorflow/tfjs-core';

/** ||x|| along `axis`, kept as a size-1 axis. */
export function euclideanNorm<T extends tf.Tensor>(x: T, axis: number): T {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(x), axis, true)) as T);
}

/** x / max(||x||, 1e-12) along `axis` (torch.nn.functional.normalize). */
export function unitLength<T extends tf.Tensor>(x: T, axis: number): T {
  return tf.tidy(() => tf.div(x, tf.maximum(euclideanNorm(x, axis), 1e-12)) as T);
}
