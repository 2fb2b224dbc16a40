// The contract every part of the model keeps: it names its parameters (timm's names, relative to
// the part) and releases them on dispose.

import * as tf from '@tensorflow/tfjs-core';
import { tfjsSeed } from '../../common/random';

export type NamedParameter = readonly [name: string, variable: tf.Variable];

/** Per-call switches that parts of the model read during a forward pass. */
export interface ForwardContext {
  /**
   * Serve the pretrained network: adapters add nothing and added blocks are skipped.
   * This is the 'unplugged' view in which the old domain is answered by the untouched weights.
   */
  readonly unplugged?: boolean;
}

export const DEFAULT_CONTEXT: ForwardContext = {};

/** Hands out consecutive seeds for random initialisers; without a base seed, none (unseeded). */
export type SeedSource = () => number | undefined;

export function seedSource(seed?: number): SeedSource {
  let next = seed;
  // tfjsSeed: TensorFlow.js would read a seed of 0 as none.
  return () => (next === undefined ? undefined : tfjsSeed(next++));
}

export const UNSEEDED: SeedSource = () => undefined;

/**
 * How a network's random weights are drawn.
 * - 'vitpeft' (the supervised pretraining's, and what every seeded model so far was made with):
 *   each weight a normal of std 0.02 truncated at 2 sigma (TensorFlow.js's truncatedNormal, so a
 *   standard deviation of 0.0176), the patch embedding drawn like the other weights with a zero
 *   bias, the class token N(0, 1e-6) as timm's newer models.
 * - 'dino': DINO's vision_transformer.py and DINOHead: trunc_normal_(std=.02) with its default
 *   cut at +-2 (absolute), i.e. a plain normal of std 0.02, for every linear weight, the class
 *   token and the position embedding; the patch embedding is a Conv2d left at PyTorch's default
 *   (weight and bias uniform in +-1/sqrt(fan-in)), and so is the head's weight-normalised last layer.
 */
export type InitScheme = 'vitpeft' | 'dino';

/** A weight of standard deviation `std` drawn as `scheme` draws its normal weights. */
export function normalWeights<R extends tf.Rank>(shape: tf.ShapeMap[R], std: number, scheme: InitScheme, seed?: number): tf.Tensor<R> {
  return scheme === 'dino' ? tf.randomNormal(shape, 0, std, 'float32', seed) : tf.truncatedNormal(shape, 0, std, 'float32', seed);
}

/** PyTorch's default for Linear and Conv2d (kaiming_uniform_ with a = sqrt(5), and the bias's rule): uniform in +-1/sqrt(fan-in). */
export function pytorchDefaultUniform<R extends tf.Rank>(shape: tf.ShapeMap[R], fanIn: number, seed?: number): tf.Tensor<R> {
  const bound = 1 / Math.sqrt(fanIn);
  return tf.randomUniform(shape, -bound, bound, 'float32', seed);
}

export interface Module {
  namedParameters(): NamedParameter[];
  dispose(): void;
}

export function prefixed(prefix: string, parameters: NamedParameter[]): NamedParameter[] {
  return parameters.map(([name, variable]) => [`${prefix}.${name}`, variable] as const);
}

/**
 * A trainable-by-default variable holding the given values (sharing their storage until either is
 * assigned). With `consume`, the given tensor is disposed, so a freshly made initial value leaks nothing.
 */
export function parameter<R extends tf.Rank>(values: tf.Tensor<R>, consume = false): tf.Variable<R> {
  const variable = tf.variable(values, true) as tf.Variable<R>;
  if (consume) values.dispose();
  return variable;
}
