// The core of multi-head self-attention, softmax(q k^T / sqrt(d)) v for every sequence and head,
// taken straight from timm's fused qkv projection output and returned as token rows ready for
// the output projection. Two formulations compute the same function:
//
// - batchedAttention: split q, k, v, move heads into a batch axis and use batched matMul. Every
//   backend has it; on wasm batched matMul runs at 1-2 GFLOP/s.
// - depthwiseAttention: each batched product a[G,M,K] b[G,K,N] written as one depthwise
//   convolution, x = [1, M, K, G], filter = [1, K, G, N], stride 1, 'valid' -> [1, M, 1, G*N]
//   (G = sequences x heads are the channels, N the channel multiplier), which wasm runs on
//   XNNPACK with threads, 3-5x faster for attention forward and backward. wasm has no depthwise
//   convolution gradient kernels, so the whole core is one custom gradient whose backward is
//   again four depthwise convolutions plus the softmax backward.
//
// depthwiseAttention works in a token-major layout [tokens, G, headDim] (G = batch x heads, batch
// outer): one transpose of the batch-major input rows, viewed as [batch, tokens, 3, width], to
// [3, tokens, batch, width] makes q, k and v contiguous token-major blocks; from there every
// operand reaches its convolution layout with a 3-D transpose (no 5-D transposes, which are slow
// on wasm), and the output comes out token-major, turned back with one more 3-D transpose.
//
// - fusedAttention: the backend's own attention kernels, where it has them (wasm).
//
// Which formulation a backend uses is decided by models/ops/kernelPolicy.ts.

import * as tf from '@tensorflow/tfjs-core';
import { ATTENTION, ATTENTION_GRAD } from './backendKernels';

export interface AttentionShape {
  readonly batch: number;
  readonly tokens: number;
  readonly heads: number;
}

function checkQkv(qkv: tf.Tensor2D, { batch, tokens, heads }: AttentionShape): { width: number; headDim: number } {
  const [rows, columns] = qkv.shape;
  if (rows !== batch * tokens || columns % 3 !== 0 || (columns / 3) % heads !== 0) {
    throw new Error(`attention: qkv has shape [${qkv.shape}], expected [${batch} x ${tokens} rows, 3 x width] with width divisible by ${heads} heads`);
  }
  const width = columns / 3;
  return { width, headDim: width / heads };
}

/**
 * qkv: rows [batch * tokens, 3 * width] (columns q, k, v, each heads x headDim, as timm's fused
 * qkv) -> rows [batch * tokens, width] of the heads' outputs side by side. Batched matMul.
 */
export function batchedAttention(qkv: tf.Tensor2D, shape: AttentionShape): tf.Tensor2D {
  const { batch, tokens, heads } = shape;
  const { width, headDim } = checkQkv(qkv, shape);
  return tf.tidy(() => {
    const [q, k, v] = tf.split(qkv, 3, 1) as tf.Tensor2D[];
    // [batch*tokens, width] -> [batch*heads, tokens, headDim]; keys go straight to [.., headDim, tokens].
    const toHeads = (t: tf.Tensor2D, order: number[], last: [number, number]) =>
      tf.reshape(tf.transpose(tf.reshape(t, [batch, tokens, heads, headDim]), order), [batch * heads, ...last]) as tf.Tensor3D;
    const queries = toHeads(tf.mul(q, 1 / Math.sqrt(headDim)), [0, 2, 1, 3], [tokens, headDim]);
    const keysTransposed = toHeads(k, [0, 2, 3, 1], [headDim, tokens]);
    const values = toHeads(v, [0, 2, 1, 3], [tokens, headDim]);
    const weights = tf.softmax(tf.matMul(queries, keysTransposed));
    const mixed = tf.matMul(weights, values);
    return tf.reshape(tf.transpose(tf.reshape(mixed, [batch, heads, tokens, headDim]), [0, 2, 1, 3]), [batch * tokens, width]) as tf.Tensor2D;
  });
}

/**
 * Batched product out[g, m, n] = sum_k x[m, k, g] f[k, g, n] for x = [M, K, G], f = [K, G, N],
 * as one depthwise convolution; the result is [M, G, N].
 */
function depthwiseProduct(x: tf.Tensor3D, f: tf.Tensor3D): tf.Tensor3D {
  const [m, k, g] = x.shape;
  const n = f.shape[2];
  if (f.shape[0] !== k || f.shape[1] !== g) throw new Error(`depthwiseProduct: x [${x.shape}] and filter [${f.shape}] do not fit`);
  const product = tf.depthwiseConv2d(tf.reshape(x, [1, m, k, g]) as tf.Tensor4D, tf.reshape(f, [1, k, g, n]) as tf.Tensor4D, 1, 'valid');
  return tf.reshape(product, [m, g, n]) as tf.Tensor3D;
}

/** The same function as batchedAttention, on depthwise convolutions with a hand-written gradient. */
export function depthwiseAttention(qkv: tf.Tensor2D, shape: AttentionShape): tf.Tensor2D {
  const { batch, tokens, heads } = shape;
  const { width, headDim } = checkQkv(qkv, shape);
  const groups = batch * heads;
  const scale = 1 / Math.sqrt(headDim);
  // [tokens, G, headDim] <-> token rows; swapping axes of 3-D tensors only.
  const toBatchRows = (t: tf.Tensor3D) => tf.reshape(tf.transpose(tf.reshape(t, [tokens, batch, width]), [1, 0, 2]), [batch * tokens, width]) as tf.Tensor2D;
  const swapLastTwo = (t: tf.Tensor3D) => tf.transpose(t, [0, 2, 1]) as tf.Tensor3D;
  const core = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    // [batch, tokens, 3, width] -> [3, tokens, batch, width]: q, k, v become contiguous blocks.
    const parts = tf.transpose(tf.reshape(input, [batch, tokens, 3, width]), [2, 1, 0, 3]);
    const [q, k, v] = tf.split(parts, 3, 0).map((t) => tf.reshape(t, [tokens, groups, headDim]) as tf.Tensor3D);
    const queries = tf.mul(q, scale) as tf.Tensor3D; // [Ti, G, D]
    const scores = depthwiseProduct(swapLastTwo(queries), tf.transpose(k, [2, 1, 0]) as tf.Tensor3D); // [Ti, D, G] x [D, G, Tj] -> [Ti, G, Tj]
    const weights = tf.softmax(scores) as tf.Tensor3D;
    const mixed = depthwiseProduct(swapLastTwo(weights), v); // [Ti, Tj, G] x [Tj, G, D] -> [Ti, G, D]
    save([queries, k, v, weights]);
    return {
      value: toBatchRows(mixed),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [savedQueries, keys, values, probabilities] = saved as tf.Tensor3D[];
        const dMixed = tf.reshape(tf.transpose(tf.reshape(dy, [batch, tokens, width]), [1, 0, 2]), [tokens, groups, headDim]) as tf.Tensor3D;
        // dP = dO v^T; softmax backward dS = P (dP - rowsum(dP P)); dq = scale dS k, dk = dS^T (scale q).
        const dWeights = depthwiseProduct(swapLastTwo(dMixed), tf.transpose(values, [2, 1, 0]) as tf.Tensor3D); // [Ti, G, Tj]
        const dScores = tf.mul(probabilities, tf.sub(dWeights, tf.sum(tf.mul(dWeights, probabilities), -1, true))) as tf.Tensor3D;
        const dScoresT = tf.transpose(dScores, [2, 0, 1]) as tf.Tensor3D; // [Tj, Ti, G]
        const dQueries = tf.mul(depthwiseProduct(swapLastTwo(dScores), keys), scale); // [Ti, Tj, G] x [Tj, G, D]
        const dKeys = depthwiseProduct(dScoresT, savedQueries); // [Tj, Ti, G] x [Ti, G, D]
        const dValues = depthwiseProduct(tf.transpose(probabilities, [2, 0, 1]) as tf.Tensor3D, dMixed); // [Tj, Ti, G] x [Ti, G, D]
        const dParts = tf.concat([dQueries, dKeys, dValues].map((t) => tf.reshape(t, [1, tokens, batch, width])), 0);
        return [tf.reshape(tf.transpose(dParts, [2, 1, 0, 3]), [batch * tokens, 3 * width])];
      },
    };
  });
  return tf.tidy(() => core(qkv));
}

/**
 * The same function as batchedAttention in two kernels of the backend's own (models/ops/
 * backendKernels.ts ATTENTION and ATTENTION_GRAD; wasm has them): one pass over each sequence
 * and head forward, one backward, keeping qkv and the softmax weights for it. With classToken,
 * only each sequence's first row attends: classTokenAttention's function, [batch, width], whose
 * row equals the full call's class-token row bit for bit (the same sums in the same order).
 */
export function fusedAttention(qkv: tf.Tensor2D, shape: AttentionShape, classToken = false): tf.Tensor2D {
  checkQkv(qkv, shape);
  const attrs = { batch: shape.batch, tokens: shape.tokens, heads: shape.heads, queries: classToken ? 1 : shape.tokens } as unknown as tf.NamedAttrMap;
  const core = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const [value, probabilities] = tf.engine().runKernel(ATTENTION, { qkv: input }, attrs) as tf.Tensor[];
    save([input, probabilities]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, [savedQkv, savedProbabilities]: tf.Tensor[]) => tf.engine().runKernel(ATTENTION_GRAD, { qkv: savedQkv, probabilities: savedProbabilities, dy }, attrs) as tf.Tensor,
    };
  });
  return tf.tidy(() => core(qkv) as tf.Tensor2D);
}

/**
 * The class token's row of the same function: softmax(q_cls k^T / sqrt(d)) v per sequence and
 * head, from the full qkv rows [batch * tokens, 3 * width] (the class token is each sequence's
 * first row) -> [batch, width]. What a network's last block needs when only its class token is
 * read: its query is one row, so the products are element-wise products and sums, with the
 * gradient taken op by op.
 */
export function classTokenAttention(qkv: tf.Tensor2D, shape: AttentionShape): tf.Tensor2D {
  const { batch, tokens, heads } = shape;
  const { width, headDim } = checkQkv(qkv, shape);
  return tf.tidy(() => {
    const sequences = tf.reshape(qkv, [batch, tokens, 3 * width]);
    const query = tf.mul(tf.slice(sequences, [0, 0, 0], [batch, 1, width]), 1 / Math.sqrt(headDim)); // [B, 1, W]
    const keys = tf.slice(sequences, [0, 0, width], [batch, tokens, width]);
    const values = tf.reshape(tf.slice(sequences, [0, 0, 2 * width], [batch, tokens, width]), [batch, tokens, heads, headDim]);
    const scores = tf.sum(tf.reshape(tf.mul(keys, query), [batch, tokens, heads, headDim]), 3); // [B, T, H]
    const weights = tf.softmax(tf.transpose(scores, [0, 2, 1])); // [B, H, T], softmax over the keys
    const mixed = tf.sum(tf.mul(tf.reshape(tf.transpose(weights, [0, 2, 1]), [batch, tokens, heads, 1]), values), 1); // [B, H, D]
    return tf.reshape(mixed, [batch, width]) as tf.Tensor2D;
  });
}
