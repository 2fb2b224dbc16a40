// Small assertions on tensors shared by the tests.

import * as tf from '@tensorflow/tfjs';

export function maxAbsDifference(a: tf.Tensor | ArrayLike<number>, b: tf.Tensor | ArrayLike<number>): number {
  const left = a instanceof tf.Tensor ? a.dataSync() : a;
  const right = b instanceof tf.Tensor ? b.dataSync() : b;
  if (left.length !== right.length) throw new Error(`cannot compare ${left.length} values with ${right.length}`);
  let worst = 0;
  for (let i = 0; i < left.length; i++) {
    const difference = Math.abs(left[i] - right[i]);
    if (!(difference <= worst)) worst = Number.isNaN(difference) ? Infinity : difference;
  }
  return worst;
}

/** Runs fn twice to warm caches, then returns how many tensors a third run left behind. */
export function tensorLeak(fn: () => void): number {
  fn();
  fn();
  const before = tf.memory().numTensors;
  fn();
  return tf.memory().numTensors - before;
}
