// Multi-head self-attention with timm's fused qkv projection (output columns: q, then k, then v)
// and output projection. Tokens travel as 2-D rows [batch * tokens, width] so the projections are
// plain 2-D matrix products, which every backend runs fastest; the attention core between them
// (models/ops/attentionCore.ts) takes the fused qkv output as it is, in the formulation the
// backend runs fastest.

import * as tf from '@tensorflow/tfjs-core';
import { batchedAttention, classTokenAttention, depthwiseAttention, fusedAttention } from '../ops/attentionCore';
import { attentionKernel } from '../ops/kernelPolicy';
import { Linear, Projection } from './linear';
import { ForwardContext, InitScheme, Module, NamedParameter, SeedSource, UNSEEDED, prefixed } from './module';

export class Attention implements Module {
  constructor(
    public qkv: Projection,
    public proj: Projection,
    readonly heads: number,
  ) {
    if (qkv.outFeatures !== 3 * qkv.inFeatures) {
      throw new Error(`Attention: qkv maps ${qkv.inFeatures} to ${qkv.outFeatures} features, expected 3 x ${qkv.inFeatures}`);
    }
    if (qkv.inFeatures % heads !== 0) throw new Error(`Attention: width ${qkv.inFeatures} is not divisible by ${heads} heads`);
  }

  static init(width: number, heads: number, seeds: SeedSource = UNSEEDED, scheme: InitScheme = 'vitpeft'): Attention {
    return new Attention(Linear.init(width, 3 * width, { seed: seeds(), scheme }), Linear.init(width, width, { seed: seeds(), scheme }), heads);
  }

  get width(): number {
    return this.qkv.inFeatures;
  }

  /** x: [batch * tokens, width] rows of `batch` sequences of `tokens` tokens. */
  forward(x: tf.Tensor2D, batch: number, tokens: number, context: ForwardContext): tf.Tensor2D {
    return tf.tidy(() => {
      const core = { 'batched-matmul': batchedAttention, 'depthwise-conv': depthwiseAttention, 'fused-kernel': fusedAttention }[attentionKernel(tokens)];
      return this.proj.forward(core(this.qkv.forward(x, context), { batch, tokens, heads: this.heads }), context);
    });
  }

  /** forward's class-token rows only, [batch, width]: every token's keys and values, one query a sequence. */
  forwardClassToken(x: tf.Tensor2D, batch: number, tokens: number, context: ForwardContext): tf.Tensor2D {
    return tf.tidy(() => {
      const shape = { batch, tokens, heads: this.heads };
      const qkv = this.qkv.forward(x, context);
      // With the fused kernels, the class-token row is the full forward's row bit for bit.
      const mixed = attentionKernel(tokens) === 'fused-kernel' ? fusedAttention(qkv, shape, true) : classTokenAttention(qkv, shape);
      return this.proj.forward(mixed, context);
    });
  }

  namedParameters(): NamedParameter[] {
    return [...prefixed('qkv', this.qkv.namedParameters()), ...prefixed('proj', this.proj.namedParameters())];
  }

  clone(): Attention {
    return new Attention(this.qkv.clone(), this.proj.clone(), this.heads);
  }

  dispose(): void {
    this.qkv.dispose();
    this.proj.dispose();
  }
}
