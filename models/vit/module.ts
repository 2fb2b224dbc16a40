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
