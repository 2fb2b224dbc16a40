// On the wasm backend a matMul with transposeA/transposeB runs an order of magnitude slower than
// an explicit transpose followed by a plain matMul (measured: ~1 vs ~15-20 GFLOP/s). TensorFlow.js's
// own BatchMatMul gradient uses the flags, so every dense layer's backward pass took the slow
// path. This registers the same gradient written with explicit transposes; each input's gradient
// stays lazy, so frozen weights cost nothing in the backward pass.

import * as tf from '@tensorflow/tfjs-core';

/** Swaps the last two axes. */
function swapLast(x: tf.Tensor): tf.Tensor {
  const order = x.shape.map((_, i) => i);
  const n = order.length;
  [order[n - 2], order[n - 1]] = [order[n - 1], order[n - 2]];
  return tf.transpose(x, order);
}

/** a (optionally transposed) times b (optionally transposed), with no transpose flags. */
export function matMulExplicit(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  return tf.tidy(() => tf.matMul(transposeA ? swapLast(a) : a, transposeB ? swapLast(b) : b));
}

let registered = false;

export function registerExplicitTransposeMatMulGradient(): void {
  if (registered) return;
  registered = true;
  tf.registerGradient({
    kernelName: tf.BatchMatMul,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const gradient = dy as tf.Tensor;
      if (!transposeA && !transposeB) {
        return { a: () => matMulExplicit(gradient, b, false, true), b: () => matMulExplicit(a, gradient, true, false) };
      }
      if (!transposeA && transposeB) {
        return { a: () => matMulExplicit(gradient, b, false, false), b: () => matMulExplicit(gradient, a, true, false) };
      }
      if (transposeA && !transposeB) {
        return { a: () => matMulExplicit(b, gradient, false, true), b: () => matMulExplicit(a, gradient, false, false) };
      }
      return { a: () => matMulExplicit(b, gradient, true, true), b: () => matMulExplicit(gradient, a, true, true) };
    },
  });
}
