// Which formulation of an operation runs fastest on which backend: decided here and nowhere else,
// from the name of the active backend. Every formulation computes the same function; tests
// compare them directly.
//
// wasm: XNNPACK runs depthwise convolutions multi-threaded and fast, batched matMul slowly
// (1-2 GFLOP/s), so attention uses the depthwise-convolution formulation there, or for short
// sequences the fused kernels that vitpeft adds to the wasm backend (di/wasmProducts.ts); its fully-connected
// operator adds a bias for free, and its sigmoid (SIMD) is ~10x faster than the scalar exp kernel.
// Native TensorFlow and the plain JavaScript cpu backend keep the plain formulations.

import * as tf from '@tensorflow/tfjs-core';
import { ATTENTION, ATTENTION_GRAD, provided } from './backendKernels';

export type AttentionKernel = 'batched-matmul' | 'depthwise-conv' | 'fused-kernel';

export interface KernelPolicy {
  readonly attention: AttentionKernel;
  /** Dense layers add the bias inside the matrix product (models/ops/affine.ts). */
  readonly fusedBias: boolean;
  /** exp(z) for z <= 0 as s / (1 - s), s = sigmoid(z) (models/ops/gelu.ts). */
  readonly expViaSigmoid: boolean;
}

const DEFAULT_POLICY: KernelPolicy = { attention: 'batched-matmul', fusedBias: false, expViaSigmoid: false };

const POLICIES: Readonly<Record<string, KernelPolicy>> = {
  wasm: { attention: 'depthwise-conv', fusedBias: true, expViaSigmoid: true },
};

export function policyFor(backendName: string): KernelPolicy {
  return POLICIES[backendName] ?? DEFAULT_POLICY;
}

/** The policy of the backend tensors are being made on now. */
export function kernelPolicy(): KernelPolicy {
  return policyFor(tf.getBackend());
}

/**
 * The fused attention kernels (models/ops/backendKernels.ts) loop over every pair of tokens per
 * head, scoring four keys at a time. Against the depthwise formulation on wasm (one thread, median
 * of 6, forward / forward and backward): 2.5 / 14 ms against 9 / 35 ms at the digit models' 17
 * tokens (batch 128, 2 heads of 32), 14-24 / 68-85 against 43-63 / 156-175 at the reference
 * shape's 65 (batch 32, 3 heads of 64), level at 100 (25 / 114 against 28 / 111), and at ViT-B/16's
 * 197 (batch 8, 12 heads) 123 / 808 against 310 / 814 ms. Up to 128 tokens they are used for
 * training too; longer sequences keep the depthwise route, whose memory the estimate was fitted
 * on for ViT-B/16 (stages/trainer/memoryEstimate.ts).
 */
export const FUSED_ATTENTION_MAX_TOKENS = 128;

/** The attention formulation for sequences of this many tokens: the backend's fused kernels where it has them and they pay. */
export function attentionKernel(tokens: number): AttentionKernel {
  const fused = tokens <= FUSED_ATTENTION_MAX_TOKENS && provided(ATTENTION) && provided(ATTENTION_GRAD);
  return fused ? 'fused-kernel' : kernelPolicy().attention;
}
