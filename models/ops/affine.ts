// A dense layer's x W + b. Where the kernel policy says so (wasm), the bias is added inside the
// matrix product (the _FusedMatMul kernel: XNNPACK's fully-connected operator with a bias), which
// saves a pass over the output, and the backward pass is a gradient registered for that kernel:
// the input's gradient written with an explicit transpose, the weight's and the bias's through
// the backend's own kernels where it has them (models/ops/explicitTransposeMatMul.ts). Each
// input's gradient is computed only if something trainable needs it, so frozen weights cost no
// weight gradient.

import * as tf from '@tensorflow/tfjs-core';
import { columnSums, matMulExplicit, transposedProduct } from './explicitTransposeMatMul';
import { kernelPolicy } from './kernelPolicy';

let registered = false;

/** Registers the gradient of _FusedMatMul for the case affine() uses: no transposes, linear activation, bias. */
export function registerFusedMatMulGradient(): void {
  if (registered) return;
  registered = true;
  tf.registerGradient({
    kernelName: tf._FusedMatMul,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const { transposeA, transposeB, activation } = attrs as unknown as { transposeA: boolean; transposeB: boolean; activation: string };
      if (transposeA || transposeB || activation !== 'linear') {
        throw new Error(`_FusedMatMul gradient: only the plain product with a bias is supported here (transposeA ${transposeA}, transposeB ${transposeB}, activation ${activation})`);
      }
      const [a, b] = saved; // [1, rows, in], [1, in, out]
      const gradient = dy as tf.Tensor3D;
      return {
        a: () => matMulExplicit(gradient, b, false, true),
        b: () => transposedProduct(a, gradient),
        bias: () => columnSums(gradient),
      };
    },
  });
}

/** x [rows, in] times weight [in, out], plus bias [out] when given. */
export function affine(x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor1D | null): tf.Tensor2D {
  return tf.tidy((): tf.Tensor2D => {
    if (!bias) return tf.matMul(x, weight);
    if (!kernelPolicy().fusedBias) return tf.add(tf.matMul(x, weight), bias);
    registerFusedMatMulGradient();
    const [rows, inFeatures] = x.shape;
    const outFeatures = weight.shape[1];
    const inputs = { a: tf.reshape(x, [1, rows, inFeatures]), b: tf.reshape(weight, [1, inFeatures, outFeatures]), bias };
    const attrs = { transposeA: false, transposeB: false, activation: 'linear', leakyreluAlpha: 0 };
    const product = tf.engine().runKernel(tf._FusedMatMul, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    return tf.reshape(product, [rows, outFeatures]);
  });
}
