// A LoRA adapter around a frozen Linear: y = x W + b + (alpha / r) x A B, on the whole output or,
// for timm's fused qkv, on column slices of it (q, k, v). The base layer is kept as it is (`base`);
// merging writes W + (alpha / r) A B into it on a copy, refuses non-finite results, and keeps the
// original weights so that unmerging restores them bit for bit.
//
// Parameter names, relative to the projection (stable; the adapter file uses them too):
//   lora_A.q, lora_B.q (slices of a fused qkv: q, k, v)   lora_A, lora_B (a whole projection)
// In the model A is [in, r] and B is [r, slice width]; files hold PyTorch's orientation.

import * as tf from '@tensorflow/tfjs-core';
import { tfjsSeed } from '../../common/random';
import { affine } from '../../models/ops/affine';
import { Linear, Projection } from '../../models/vit/linear';
import { ForwardContext, Module, NamedParameter, parameter } from '../../models/vit/module';

/** One low-rank pair writing to output columns [offset, offset + B's width) of its projection. */
export class LoraAdapter implements Module {
  constructor(
    /** 'q', 'k', 'v' for a slice of a fused qkv; '' for the whole projection. */
    readonly slice: string,
    readonly offset: number,
    readonly A: tf.Variable<tf.Rank.R2>,
    readonly B: tf.Variable<tf.Rank.R2>,
  ) {
    if (A.shape[1] !== B.shape[0]) throw new Error(`LoraAdapter: A is [${A.shape}] but B is [${B.shape}]; their rank must agree`);
  }

  /**
   * A ~ U(-1/sqrt(in), 1/sqrt(in)) (peft's kaiming_uniform with a = sqrt 5), B = 0: a new adapter
   * changes nothing until B is trained.
   */
  static init(slice: string, offset: number, inFeatures: number, outFeatures: number, rank: number, seed?: number): LoraAdapter {
    const bound = 1 / Math.sqrt(inFeatures);
    return new LoraAdapter(
      slice,
      offset,
      parameter(tf.randomUniform([inFeatures, rank], -bound, bound, 'float32', tfjsSeed(seed)) as tf.Tensor2D, true),
      parameter(tf.zeros([rank, outFeatures]) as tf.Tensor2D, true),
    );
  }

  get rank(): number {
    return this.A.shape[1];
  }

  get width(): number {
    return this.B.shape[1];
  }

  /** Relative names: lora_A.q / lora_B.q, or lora_A / lora_B for a whole projection. */
  namedParameters(): NamedParameter[] {
    const suffix = this.slice ? `.${this.slice}` : '';
    return [
      [`lora_A${suffix}`, this.A],
      [`lora_B${suffix}`, this.B],
    ];
  }

  clone(): LoraAdapter {
    return new LoraAdapter(this.slice, this.offset, parameter(this.A), parameter(this.B));
  }

  dispose(): void {
    this.A.dispose();
    this.B.dispose();
  }
}

export class LoraLinear implements Projection {
  /** The base weights from before merge(); null while unmerged. */
  private original: tf.Tensor2D | null = null;

  constructor(
    readonly base: Linear,
    readonly adapters: readonly LoraAdapter[],
    readonly alpha: number,
  ) {
    if (adapters.length === 0) throw new Error('LoraLinear: needs at least one adapter');
    const rank = adapters[0].rank;
    let previousEnd = 0;
    for (const adapter of adapters) {
      if (adapter.rank !== rank) throw new Error(`LoraLinear: adapters have ranks ${rank} and ${adapter.rank}; one layer has one rank`);
      if (adapter.A.shape[0] !== base.inFeatures) throw new Error(`LoraLinear: A is [${adapter.A.shape}] but the layer takes ${base.inFeatures} features`);
      if (adapter.offset < previousEnd || adapter.offset + adapter.width > base.outFeatures) {
        throw new Error(`LoraLinear: adapter '${adapter.slice}' writes columns [${adapter.offset}, ${adapter.offset + adapter.width}), outside or overlapping within ${base.outFeatures}`);
      }
      previousEnd = adapter.offset + adapter.width;
    }
  }

  get inFeatures(): number {
    return this.base.inFeatures;
  }

  get outFeatures(): number {
    return this.base.outFeatures;
  }

  get rank(): number {
    return this.adapters[0].rank;
  }

  get scale(): number {
    return this.alpha / this.rank;
  }

  get merged(): boolean {
    return this.original !== null;
  }

  forward(x: tf.Tensor2D, context: ForwardContext = {}): tf.Tensor2D {
    const original = this.original;
    if (original) {
      if (!context.unplugged) return this.base.forward(x);
      return affine(x, original, this.base.bias);
    }
    if (context.unplugged) return this.base.forward(x);
    return tf.tidy(() => tf.add<tf.Tensor2D>(this.base.forward(x), tf.matMul(tf.matMul(x, this.concatenatedA()), this.expandedB())));
  }

  /** [in, r * adapters]: every A side by side, so x meets them in one product. */
  private concatenatedA(): tf.Tensor2D {
    return this.adapters.length === 1 ? this.adapters[0].A : tf.concat(this.adapters.map((adapter) => adapter.A), 1);
  }

  /** [r * adapters, out]: each B placed at its output columns (zeros elsewhere), times alpha / r. */
  private expandedB(): tf.Tensor2D {
    const out = this.outFeatures;
    const rank = this.rank;
    const rows = this.adapters.map((adapter) => {
      if (adapter.offset === 0 && adapter.width === out) return adapter.B;
      const pieces: tf.Tensor2D[] = [];
      if (adapter.offset > 0) pieces.push(tf.zeros([rank, adapter.offset]));
      pieces.push(adapter.B);
      const after = out - adapter.offset - adapter.width;
      if (after > 0) pieces.push(tf.zeros([rank, after]));
      return tf.concat(pieces, 1);
    });
    const expanded = rows.length === 1 ? rows[0] : tf.concat(rows, 0);
    return this.scale === 1 ? expanded : tf.mul(expanded, this.scale);
  }

  /** The update the adapters make to the weights: (alpha / r) A B, [in, out]. */
  delta(): tf.Tensor2D {
    return tf.tidy(() => tf.matMul(this.concatenatedA(), this.expandedB()));
  }

  /**
   * W + (alpha / r) A B as a new tensor, or an error naming `where` if any entry is not finite.
   * While merged, the base weights already are the merged weights.
   */
  mergedWeight(where = 'LoRA layer'): tf.Tensor2D {
    if (this.original) return tf.clone(this.base.weight);
    const weight = tf.tidy(() => tf.add<tf.Tensor2D>(this.base.weight, this.delta()));
    const values = weight.dataSync();
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) {
        weight.dispose();
        throw new Error(`${where}: merging gives a non-finite weight (${values[i]} at entry ${i}); the adapters hold non-finite or overflowing values, nothing was changed`);
      }
    }
    return weight;
  }

  /** Writes the merged weights into the base layer (keeping the original). */
  merge(where?: string): void {
    this.commitMerge(this.mergedWeight(where));
  }

  /** Takes a weight made by mergedWeight(); split from merge() so a model merges all layers or none. */
  commitMerge(weight: tf.Tensor2D): void {
    if (this.original) {
      weight.dispose();
      throw new Error('LoraLinear: already merged; unmerge first');
    }
    this.original = tf.clone(this.base.weight);
    this.base.weight.assign(weight);
    weight.dispose();
  }

  /** Restores exactly the base weights from before merge(). */
  unmerge(): void {
    if (!this.original) throw new Error('LoraLinear: not merged');
    this.base.weight.assign(this.original);
    this.original.dispose();
    this.original = null;
  }

  /** A plain Linear computing what this layer computes (merged weights, the same bias). */
  toLinear(where?: string): Linear {
    return new Linear(parameter(this.mergedWeight(where), true), this.base.bias ? parameter(this.base.bias) : null);
  }

  namedParameters(): NamedParameter[] {
    return [...this.base.namedParameters(), ...this.adapters.flatMap((adapter) => adapter.namedParameters())];
  }

  clone(): LoraLinear {
    const copy = new LoraLinear(this.base.clone(), this.adapters.map((adapter) => adapter.clone()), this.alpha);
    if (this.original) copy.original = tf.clone(this.original);
    return copy;
  }

  dispose(): void {
    this.base.dispose();
    for (const adapter of this.adapters) adapter.dispose();
    this.original?.dispose();
    this.original = null;
  }
}
