// A dense layer y = x W + b with W stored [in, out] (TensorFlow.js order; checkpoints in
// PyTorch's [out, in] order are transposed by the checkpoint translator, never here).

import * as tf from '@tensorflow/tfjs-core';
import { affine } from '../ops/affine';
import { ForwardContext, InitScheme, Module, NamedParameter, normalWeights, parameter } from './module';

/** What attention and MLP call: a dense map of 2-D token rows, possibly wrapped by an adapter. */
export interface Projection extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: tf.Tensor2D, context: ForwardContext): tf.Tensor2D;
  /** A structural copy with fresh variables holding the same values. */
  clone(): Projection;
}

export class Linear implements Projection {
  constructor(
    readonly weight: tf.Variable<tf.Rank.R2>,
    readonly bias: tf.Variable<tf.Rank.R1> | null,
  ) {
    if (bias && bias.shape[0] !== weight.shape[1]) {
      throw new Error(`Linear: bias has ${bias.shape[0]} elements but weight has ${weight.shape[1]} outputs`);
    }
  }

  /** timm's default init: normal (std 0.02) weights drawn as `scheme` says (absent: 'vitpeft'), zero bias. */
  static init(inFeatures: number, outFeatures: number, options: { bias?: boolean; std?: number; seed?: number; scheme?: InitScheme } = {}): Linear {
    const std = options.std ?? 0.02;
    const initial: tf.Tensor2D =
      std === 0 ? tf.zeros([inFeatures, outFeatures]) : normalWeights<tf.Rank.R2>([inFeatures, outFeatures], std, options.scheme ?? 'vitpeft', options.seed);
    const weight = parameter(initial, true);
    const bias = options.bias === false ? null : parameter(tf.zeros([outFeatures]) as tf.Tensor1D, true);
    return new Linear(weight, bias);
  }

  get inFeatures(): number {
    return this.weight.shape[0];
  }

  get outFeatures(): number {
    return this.weight.shape[1];
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return affine(x, this.weight, this.bias);
  }

  namedParameters(): NamedParameter[] {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  clone(): Linear {
    return new Linear(parameter(this.weight), this.bias ? parameter(this.bias) : null);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
