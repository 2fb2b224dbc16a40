// GELU in its exact form, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), as PyTorch's nn.GELU() and
// both DINO checkpoints use; not the tanh approximation.

import * as tf from '@tensorflow/tfjs';

export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)) as T);
}
