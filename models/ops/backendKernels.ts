// Kernels that a backend may provide beyond TensorFlow.js's own, by name. Each computes what a
// composition of stock ops computes; the op that uses one (models/ops/*) falls back to that
// composition where the running backend has none. The wasm backend provides all of them
// (di/wasmProducts.ts).

import * as tf from '@tensorflow/tfjs-core';

/** Inputs {a: [..., T, I], b: [..., T, J]} with every leading axis 1, output a^T b as [I, J]. */
export const MATMUL_TN = 'VitpeftMatMulTN';
/** Input {x: [..., T, J]}, output the column sums [J]. */
export const COLUMN_SUMS = 'VitpeftColumnSums';
/** Input {x} float32, output the exact GELU x Phi(x), same shape. */
export const GELU = 'VitpeftGelu';
/** Inputs {x, dy} float32 of one shape, output dy GELU'(x). */
export const GELU_GRAD = 'VitpeftGeluGrad';

/**
 * Input {qkv: [batch * tokens, 3 * width]} (timm's fused rows), attrs {batch, tokens, heads,
 * queries}: the first `queries` tokens of each sequence attend (all of them, or 1: the class
 * token alone). Outputs the attention rows [batch * queries, width] and the softmax weights
 * [batch, heads, queries, tokens].
 */
export const ATTENTION = 'VitpeftAttention';
/** Inputs {qkv, probabilities, dy} (as ATTENTION's input, second output, first output's gradient), same attrs: the qkv gradient. */
export const ATTENTION_GRAD = 'VitpeftAttentionGrad';

/** Input {x} float32 [..., C], attrs {eps}: outputs xhat = (x - mean) / sqrt(variance + eps) over the last axis, and that 1 / sqrt(variance + eps) [rows]. */
export const NORMALIZE = 'VitpeftNormalize';
/** Inputs {xhat, rstd, dy} (NORMALIZE's two outputs and the first one's gradient): the gradient with respect to x. */
export const NORMALIZE_GRAD = 'VitpeftNormalizeGrad';

/** Inputs {x [..., C], weight [C], bias [C]} float32, attrs {eps}: LayerNorm with its scale and shift, xhat weight + bias. */
export const LAYER_NORM = 'VitpeftLayerNorm';
/** Inputs {x, weight, dy} (LAYER_NORM's input and scale, its output's gradient), attrs {eps}: the gradient with respect to x. */
export const LAYER_NORM_GRAD = 'VitpeftLayerNormGrad';
/** Inputs {x, dy}, attrs {eps}: the scale's gradient [C], the sum over rows of dy xhat. */
export const LAYER_NORM_WEIGHT_GRAD = 'VitpeftLayerNormWeightGrad';

/**
 * Inputs {variable, gradient, buffer} (buffer: the momentum, when momentum > 0), attrs {lr,
 * momentum, weightDecay}: outputs the updated variable and buffer of torch.optim.SGD's step, the
 * same bits as the composition in stages/trainer/optimizer.ts.
 */
export const SGD_UPDATE = 'VitpeftSgdUpdate';
/**
 * Inputs {variable, gradient, m, v}, attrs {beta1, beta2, keep (1 - lr wd, or 1), sqrtCorrection2,
 * eps, stepSize (lr / correction1)}: the updated variable, m and v of torch.optim.AdamW's step,
 * the same bits as the composition in stages/trainer/optimizer.ts.
 */
export const ADAMW_UPDATE = 'VitpeftAdamWUpdate';
/** Inputs {average, value}, attrs {momentum}: average momentum + value (1 - momentum), the same bits as tf.add(tf.mul(...), tf.mul(...)). */
export const EMA_UPDATE = 'VitpeftEmaUpdate';

/** Every kernel name above. */
export const OWN_KERNELS: readonly string[] = [MATMUL_TN, COLUMN_SUMS, GELU, GELU_GRAD, ATTENTION, ATTENTION_GRAD, NORMALIZE, NORMALIZE_GRAD, LAYER_NORM, LAYER_NORM_GRAD, LAYER_NORM_WEIGHT_GRAD, SGD_UPDATE, ADAMW_UPDATE, EMA_UPDATE];

/** Whether the running backend has the kernel. */
export function provided(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}
