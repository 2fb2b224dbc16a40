// Which formulation of an operation runs fastest on which backend: decided here and nowhere else,
// from the name of the active backend. Every formulation computes the same function; tests
// compare them directly.
//
// wasm: XNNPACK runs depthwise convolutions multi-threaded and fast, batched matMul slowly
// (1-2 GFLOP/s), so attention uses the depthwise-convolution formulation there; its fully-connected
// operator adds a bias for free, and its sigmoid (SIMD) is ~10x faster than the scalar exp kernel.
// Native TensorFlow and the plain JavaScript cpu backend keep the plain formulations.

import * as tf from '@tensorflow/tfjs-core';

export type AttentionKernel = 'batched-matmul' | 'depthwise-conv';

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
