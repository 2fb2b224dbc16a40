// Multi-head self-attention with timm's fused qkv projection (output columns: q, then k, then v)
// and output projection. Tokens travel as 2-D rows [batch * tokens, width] so the projections are
// plain 2-D matrix products, which every backend runs fastest.

import * as tf from '@tensorflow/tfjs';
import { Linear, Projection } from './linear';
import { ForwardContext, Module, NamedParameter, SeedSource, UNSEEDED, prefixed } from './module';

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

  static init(width: number, heads: number, seeds: SeedSource = UNSEEDED): Attention {
    return new Attention(Linear.init(width, 3 * width, { seed: seeds() }), Linear.init(width, width, { seed: seeds() }), heads);
  }

  get width(): number {
    return this.qkv.inFeatures;
  }

  /** x: [batch * tokens, width] rows of `batch` sequences of `tokens` tokens. */
  forward(x: tf.Tensor2D, batch: number, tokens: number, context: ForwardContext): tf.Tensor2D {
    return tf.tidy(() => {
      const width = this.width;
      const headDim = width / this.heads;
      const [q, k, v] = tf.split(this.qkv.forward(x, context), 3, 1) as tf.Tensor2D[];
      // [batch*tokens, width] -> [batch*heads, tokens, headDim]; keys go straight to [.., headDim, tokens].
      const toHeads = (t: tf.Tensor2D, order: number[], last: [number, number]) =>
        tf.reshape(tf.transpose(tf.reshape(t, [batch, tokens, this.heads, headDim]), order), [batch * this.heads, ...last]) as tf.Tensor3D;
      const queries = toHeads(tf.mul(q, 1 / Math.sqrt(headDim)), [0, 2, 1, 3], [tokens, headDim]);
      const keysTransposed = toHeads(k, [0, 2, 3, 1], [headDim, tokens]);
      const values = toHeads(v, [0, 2, 1, 3], [tokens, headDim]);
      const weights = tf.softmax(tf.matMul(queries, keysTransposed));
      const mixed = tf.matMul(weights, values);
      const merged = tf.reshape(tf.transpose(tf.reshape(mixed, [batch, this.heads, tokens, headDim]), [0, 2, 1, 3]), [batch * tokens, width]) as tf.Tensor2D;
      return this.proj.forward(merged, context);
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
