// A [1, ...] tensor repeated along its first axis, as tf.tile does, with a gradient of one column
// sum. tf.tile's registered gradient slices dy once per repetition and adds the slices one by one:
// for a class token expanded over a batch, 2 kernels an image (about 900 a DINO step). Where the
// backend has the column-sum kernel (wasm) the sum runs in the same order (rows in turn, from zero),
// so the gradient has the same bits.

import * as tf from '@tensorflow/tfjs-core';
import { columnSums } from './explicitTransposeMatMul';

/** x [1, ...rest] repeated `times` along the first axis: [times, ...rest]. */
export function repeatFirstAxis<T extends tf.Tensor>(x: T, times: number): T {
  if (x.shape[0] !== 1) throw new Error(`repeatFirstAxis: expected a first axis of 1, got [${x.shape}]`);
  const rest = x.shape.slice(1);
  const size = tf.util.sizeFromShape(rest);
  const repeat = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input] = args as [tf.Tensor];
    return {
      value: tf.tile(input, [times, ...rest.map(() => 1)]),
      gradFunc: (dy: tf.Tensor) => tf.reshape(columnSums(tf.reshape(dy, [times, size])), x.shape),
    };
  }) as (input: tf.Tensor) => tf.Tensor;
  return repeat(x) as T;
}
