// GELU in its exact form, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), as PyTorch's nn.GELU() and
// both DINO checkpoints use; not the tanh approximation.
//
// gelu computes the forward pass with the same ops as the plain formula (geluComposed), so its
// values are identical, but its backward pass is the analytic derivative
// Phi(x) + x phi(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi), written with
// fewer element-wise ops than differentiating the formula op by op (8 instead of 10, on the
// largest activation of every block), and it keeps only x and 1 + erf(x / sqrt 2) for it. Its
// exp can go through the fast sigmoid kernel (expOfNonPositive).
//
// Where the backend provides GELU kernels (models/ops/backendKernels.ts; wasm does), the forward
// and backward passes are one kernel each: the same function to float32 resolution (its erf is
// within 1.5e-7 of the exact one), not the same ops.

import * as tf from '@tensorflow/tfjs-core';
import { GELU, GELU_GRAD, provided } from './backendKernels';
import { kernelPolicy } from './kernelPolicy';

const INVERSE_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * exp(z) for z <= 0. Where the kernel policy says so (wasm: the exp kernel is scalar, ~20 ms for
 * the reference shape's MLP activation, sigmoid is XNNPACK SIMD, ~2.5 ms) it is s / (1 - s) with
 * s = sigmoid(z) = e^z / (1 + e^z), which for z <= 0 loses no precision: s <= 1/2, so 1 - s is
 * at least 1/2, and where e^z underflows so does s.
 */
export function expOfNonPositive(z: tf.Tensor): tf.Tensor {
  if (!kernelPolicy().expViaSigmoid) return tf.exp(z);
  return tf.tidy(() => {
    const s = tf.sigmoid(z);
    return tf.div(s, tf.sub(1, s));
  });
}

/** The formula, differentiated op by op: the reference for gelu. */
export function geluComposed<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)) as T);
}

const geluWithGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const onePlusErf = tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1);
  save([x, onePlusErf]);
  return {
    value: tf.mul(tf.mul(x, 0.5), onePlusErf),
    gradFunc: (dy: tf.Tensor, [input, savedOnePlusErf]: tf.Tensor[]) => {
      const density = expOfNonPositive(tf.mul(tf.square(input), -0.5)); // sqrt(2 pi) phi(x)
      const slope = tf.add(tf.mul(savedOnePlusErf, 0.5), tf.mul(input, tf.mul(density, INVERSE_SQRT_2PI)));
      return tf.mul(dy, slope);
    },
  };
});

/** The backend's fused kernels: one pass forward, one backward, and only x kept for it. */
const geluFused = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  save([x]);
  return {
    value: tf.engine().runKernel(GELU, { x }) as tf.Tensor,
    gradFunc: (dy: tf.Tensor, [input]: tf.Tensor[]) => tf.engine().runKernel(GELU_GRAD, { x: input, dy }) as tf.Tensor,
  };
});

export function gelu<T extends tf.Tensor>(x: T): T {
  const fused = x.dtype === 'float32' && provided(GELU) && provided(GELU_GRAD);
  return tf.tidy(() => (fused ? geluFused(x) : geluWithGradient(x)) as T);
}
