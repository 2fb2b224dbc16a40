// LayerNorm over the last axis with learned scale and shift (the normalisation itself has a
// hand-written gradient: models/ops/normalize.ts).

import * as tf from '@tensorflow/tfjs-core';
import { normalize } from '../ops/normalize';
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
    return tf.tidy(() => tf.add(tf.mul(normalize(x, this.eps), this.weight), this.bias) as T);
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
