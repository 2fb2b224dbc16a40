// The parameter-free half of LayerNorm: (x - mean) / sqrt(variance + eps) over the last axis,
// with a hand-written gradient. Differentiated op by op, the forward pass's six element-wise ops
// and two reductions cost about fifteen element-wise ops backward (every broadcast of the mean and
// the variance has its own gradient); the analytic form
//   dx = rstd (g - mean(g) - xhat mean(g xhat)),  g = dL/dxhat,  rstd = 1 / sqrt(variance + eps)
// needs five element-wise ops and two reductions, and keeps only xhat and rstd.
//
// The forward pass runs the same ops as the plain formula (normalizeComposed), so values are
// identical; where the backend has its own kernels for both passes (wasm), they are used instead,
// with the sums in another order. layerNorm adds the learned scale and shift: in one kernel where
// the backend has it (wasm), else with ordinary ops after normalize; either way their gradients
// are computed only when they train.

import * as tf from '@tensorflow/tfjs-core';
import { columnSums } from './explicitTransposeMatMul';
import { LAYER_NORM, LAYER_NORM_GRAD, LAYER_NORM_WEIGHT_GRAD, NORMALIZE, NORMALIZE_GRAD, provided } from './backendKernels';

/** The formula, differentiated op by op: the reference for normalize. */
export function normalizeComposed<T extends tf.Tensor>(x: T, eps: number): T {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), -1, true);
    return tf.mul(centered, tf.rsqrt(tf.add(variance, eps))) as T;
  });
}

const cache = new Map<number, (x: tf.Tensor) => tf.Tensor>();

function normalizeWithGradient(eps: number): (x: tf.Tensor) => tf.Tensor {
  let op = cache.get(eps);
  if (!op) {
    op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      const mean = tf.mean(x, -1, true);
      const centered = tf.sub(x, mean);
      const variance = tf.mean(tf.square(centered), -1, true);
      const rstd = tf.rsqrt(tf.add(variance, eps));
      const normalized = tf.mul(centered, rstd);
      save([normalized, rstd]);
      return {
        value: normalized,
        gradFunc: (dy: tf.Tensor, [xhat, savedRstd]: tf.Tensor[]) => {
          const meanGradient = tf.mean(dy, -1, true);
          const meanProjection = tf.mean(tf.mul(dy, xhat), -1, true);
          return tf.mul(tf.sub(tf.sub(dy, meanGradient), tf.mul(xhat, meanProjection)), savedRstd);
        },
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    cache.set(eps, op);
  }
  return op;
}

const fusedCache = new Map<number, (x: tf.Tensor) => tf.Tensor>();

/** The backend's kernels (models/ops/backendKernels.ts): one pass forward, one backward, keeping xhat and rstd. */
function normalizeFused(eps: number): (x: tf.Tensor) => tf.Tensor {
  let op = fusedCache.get(eps);
  if (!op) {
    const attrs = { eps } as unknown as tf.NamedAttrMap;
    op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      const [normalized, rstd] = tf.engine().runKernel(NORMALIZE, { x }, attrs) as tf.Tensor[];
      save([normalized, rstd]);
      return {
        value: normalized,
        gradFunc: (dy: tf.Tensor, [xhat, savedRstd]: tf.Tensor[]) => tf.engine().runKernel(NORMALIZE_GRAD, { xhat, rstd: savedRstd, dy }) as tf.Tensor,
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    fusedCache.set(eps, op);
  }
  return op;
}

/** (x - mean) / sqrt(variance + eps) over the last axis. */
export function normalize<T extends tf.Tensor>(x: T, eps: number): T {
  const fused = x.dtype === 'float32' && provided(NORMALIZE) && provided(NORMALIZE_GRAD);
  return tf.tidy(() => (fused ? normalizeFused(eps) : normalizeWithGradient(eps))(x) as T);
}

let layerNormGradientRegistered = false;

/**
 * The gradient of the backend's LAYER_NORM kernel. Each input's gradient is computed only when
 * something trainable needs it (the engine asks for it lazily): a frozen LayerNorm costs one
 * kernel backward, a trained one three (x, the scale, the shift as column sums of dy).
 */
function registerLayerNormGradient(): void {
  if (layerNormGradientRegistered) return;
  layerNormGradientRegistered = true;
  tf.registerGradient({
    kernelName: LAYER_NORM,
    inputsToSave: ['x', 'weight'],
    gradFunc: (dy, saved, attrs) => {
      const [x, weight] = saved;
      const gradient = dy as tf.Tensor;
      const columns = x.shape[x.rank - 1];
      return {
        x: () => tf.engine().runKernel(LAYER_NORM_GRAD, { x, weight, dy: gradient }, attrs) as tf.Tensor,
        weight: () => tf.engine().runKernel(LAYER_NORM_WEIGHT_GRAD, { x, dy: gradient }, attrs) as tf.Tensor,
        bias: () => columnSums(tf.reshape(gradient, [-1, columns])),
      };
    },
  });
}

/**
 * LayerNorm over the last axis with scale and shift: normalize(x) weight + bias. Where the backend
 * has the kernels (wasm), one kernel forward (the same values as normalize's kernel, then the
 * scale and shift: the composition's bits) and one to three backward instead of 3 and 2 to 5.
 */
export function layerNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): T {
  const fused = x.dtype === 'float32' && provided(LAYER_NORM) && provided(LAYER_NORM_GRAD) && provided(LAYER_NORM_WEIGHT_GRAD);
  if (!fused) return tf.tidy(() => tf.add(tf.mul(normalize(x, eps), weight), bias) as T);
  registerLayerNormGradient();
  return tf.engine().runKernel(LAYER_NORM, { x, weight, bias }, { eps } as unknown as tf.NamedAttrMap) as T;
}
