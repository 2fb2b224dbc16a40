// LayerNorm over the last axis with learned scale and shift (models/ops/normalize.ts: one kernel
// where the backend has it, else the normalisation with its hand-written gradient, then the scale and shift).

import * as tf from '@tensorflow/tfjs-core';
import { layerNorm } from '../ops/normalize';
import { Module, NamedParameter, parameter } from './module';

export class LayerNorm implements Module {
  constructor(
    readonly weight: tf.Variable<tf.Rank.R1>,
    readonly bias: tf.Variable<tf.Rank.R1>,
    readonly eps: number,
  ) {}

  static init(width: number, eps: number): LayerNorm {
    return new LayerNorm(parameter(tf.ones([width]) as tf.Tensor1D, true), parameter(tf.zeros([width]) as tf.Tensor1D, true), eps);
  }

  forward<T extends tf.Tensor>(x: T): T {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }

  namedParameters(): NamedParameter[] {
    return [['weight', this.weight], ['bias', this.bias]];
  }

  clone(): LayerNorm {
    return new LayerNorm(parameter(this.weight), parameter(this.bias), this.eps);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}
