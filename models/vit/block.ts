// A pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).

import * as tf from '@tensorflow/tfjs-core';
import { Attention } from './attention';
import { LayerNorm } from './layerNorm';
import { Mlp } from './mlp';
import { ForwardContext, InitScheme, Module, NamedParameter, SeedSource, UNSEEDED, prefixed } from './module';

export class Block implements Module {
  constructor(
    readonly norm1: LayerNorm,
    readonly attn: Attention,
    readonly norm2: LayerNorm,
    readonly mlp: Mlp,
    /** True for a block added by block expansion; the unplugged view skips it. */
    readonly added = false,
  ) {}

  static init(width: number, heads: number, mlpHidden: number, eps: number, seeds: SeedSource = UNSEEDED, scheme: InitScheme = 'vitpeft'): Block {
    return new Block(LayerNorm.init(width, eps), Attention.init(width, heads, seeds, scheme), LayerNorm.init(width, eps), Mlp.init(width, mlpHidden, seeds, scheme));
  }

  forward(x: tf.Tensor2D, batch: number, tokens: number, context: ForwardContext): tf.Tensor2D {
    if (this.added && context.unplugged) return x.clone();
    return tf.tidy(() => {
      const afterAttention = tf.add<tf.Tensor2D>(x, this.attn.forward(this.norm1.forward(x), batch, tokens, context));
      return tf.add<tf.Tensor2D>(afterAttention, this.mlp.forward(this.norm2.forward(afterAttention), context));
    });
  }

  /**
   * forward's class-token rows only, [batch, width], from all token rows: attention reads every
   * token, but the residual, the second norm and the MLP run on one row a sequence. For a last
   * block, whose other rows nothing reads.
   */
  forwardClassToken(x: tf.Tensor2D, batch: number, tokens: number, context: ForwardContext): tf.Tensor2D {
    return tf.tidy(() => {
      const cls = classTokenRows(x, batch, tokens);
      if (this.added && context.unplugged) return cls;
      const afterAttention = tf.add<tf.Tensor2D>(cls, this.attn.forwardClassToken(this.norm1.forward(x), batch, tokens, context));
      return tf.add<tf.Tensor2D>(afterAttention, this.mlp.forward(this.norm2.forward(afterAttention), context));
    });
  }

  namedParameters(): NamedParameter[] {
    return [
      ...prefixed('norm1', this.norm1.namedParameters()),
      ...prefixed('attn', this.attn.namedParameters()),
      ...prefixed('norm2', this.norm2.namedParameters()),
      ...prefixed('mlp', this.mlp.namedParameters()),
    ];
  }

  /** A copy with fresh variables; `added` marks the copy as a new block. */
  clone(added = this.added): Block {
    return new Block(this.norm1.clone(), this.attn.clone(), this.norm2.clone(), this.mlp.clone(), added);
  }

  dispose(): void {
    this.norm1.dispose();
    this.attn.dispose();
    this.norm2.dispose();
    this.mlp.dispose();
  }
}

/** The first row of each sequence of token rows [batch * tokens, width]: [batch, width]. */
export function classTokenRows(rows: tf.Tensor2D, batch: number, tokens: number): tf.Tensor2D {
  const width = rows.shape[1];
  return tf.tidy(() => tf.reshape(tf.slice(tf.reshape(rows, [batch, tokens, width]), [0, 0, 0], [batch, 1, width]), [batch, width]) as tf.Tensor2D);
}
