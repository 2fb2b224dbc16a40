// On the wasm backend a matMul with transposeA/transposeB runs an order of magnitude slower than
// an explicit transpose followed by a plain matMul (measured: ~1 vs ~15-20 GFLOP/s). TensorFlow.js's
// own BatchMatMul gradient uses the flags, so every dense layer's backward pass took the slow
// path. This registers the same gradient written with explicit transposes; each input's gradient
// stays lazy, so frozen weights cost nothing in the backward pass.
//
// A weight gradient X^T dY and a bias gradient (the column sums of dY) go through kernels a
// backend may provide (models/ops/backendKernels.ts; the wasm backend does: di/wasmProducts.ts,
// which reads both operands where they lie instead of transposing X and packing dY). Elsewhere,
// or for a batched product, the same values come from an explicit transpose and a matMul.

import * as tf from '@tensorflow/tfjs-core';
import { COLUMN_SUMS, MATMUL_TN, provided } from './backendKernels';

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

/** The product of the last two axes as one matrix: every leading axis is 1 and the dtype float32. */
function singleMatrix(x: tf.Tensor): boolean {
  return x.rank >= 2 && x.shape.slice(0, -2).every((n) => n === 1) && x.dtype === 'float32';
}

/** a^T b over the last two axes, a [..., T, I] and b [..., T, J]: [..., I, J] (a batched product stays batched). */
export function transposedProduct(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (!(singleMatrix(a) && singleMatrix(b) && a.rank === b.rank && provided(MATMUL_TN))) return matMulExplicit(a, b, true, false);
  const [I, J] = [a.shape[a.rank - 1], b.shape[b.rank - 1]];
  return tf.tidy(() => tf.reshape(tf.engine().runKernel(MATMUL_TN, { a, b }) as tf.Tensor, [...a.shape.slice(0, -2), I, J]));
}

/** Column sums of a [T, J] matrix (or [1, ..., T, J]): [J]. */
export function columnSums(m: tf.Tensor): tf.Tensor1D {
  const columns = m.shape[m.rank - 1];
  if (singleMatrix(m) && provided(COLUMN_SUMS)) return tf.engine().runKernel(COLUMN_SUMS, { x: m }) as tf.Tensor1D;
  // XNNPACK and the others run ones[1, T] x m faster than a reduction over rows.
  return tf.tidy(() => {
    const matrix = tf.reshape(m, [-1, columns]);
    return tf.reshape(tf.matMul(tf.ones([1, matrix.shape[0]]), matrix), [columns]) as tf.Tensor1D;
  });
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
        return { a: () => matMulExplicit(gradient, b, false, true), b: () => transposedProduct(a, gradient) };
      }
      if (!transposeA && transposeB) {
        return { a: () => matMulExplicit(gradient, b, false, false), b: () => transposedProduct(gradient, a) };
      }
      if (transposeA && !transposeB) {
        return { a: () => matMulExplicit(b, gradient, false, true), b: () => matMulExplicit(a, gradient, false, false) };
      }
      return { a: () => matMulExplicit(b, gradient, true, true), b: () => matMulExplicit(gradient, a, true, true) };
    },
  });
}
