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
 * head: 2-3x faster than the depthwise formulation at the digit models' 5-17 tokens, 2x slower at
 * ViT-B/16's 197 (measured on wasm, forward and backward).
 */
export const FUSED_ATTENTION_MAX_TOKENS = 64;

/** The attention formulation for sequences of this many tokens: the backend's fused kernels where it has them and they pay. */
export function attentionKernel(tokens: number): AttentionKernel {
  const fused = tokens <= FUSED_ATTENTION_MAX_TOKENS && provided(ATTENTION) && provided(ATTENTION_GRAD);
  return fused ? 'fused-kernel' : kernelPolicy().attention;
}
