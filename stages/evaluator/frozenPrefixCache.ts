// What a job's evaluations need not compute twice. Blocks before the first trainable one (with
// the embeddings) cannot change while a method trains, so their output for every evaluation image
// is the same at every evaluation: it is computed once per job, kept per batch, and each later
// evaluation runs only the blocks that train, the final norm and the head. When nothing in the
// backbone trains (linear probing) the normed class tokens themselves are kept. The results are
// bit for bit those of the full forward pass: the same kernels on the same batches.
//
// Bounded by a byte budget per job: a set whose activations do not fit is not kept (and its
// evaluations run the whole network, as without a cache).

import * as tf from '@tensorflow/tfjs-core';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import type { DatasetSource } from '../dataset/source';
import type { Transform } from '../dataset/transforms';

/** One batch's frozen activations: token rows after the frozen blocks, or the final class-token features. */
export interface FrozenBatch {
  readonly rows: tf.Tensor2D;
  readonly batch: number;
  readonly tokens: number;
  readonly labels: Int32Array;
}

/** A first pass being kept: add each batch (a copy is kept); abandon if the pass fails. */
export interface FrozenRecording {
  add(batch: FrozenBatch): void;
  abandon(): void;
}

interface KeptSet {
  readonly batchSize: number;
  readonly batches: FrozenBatch[];
}

export class FrozenPrefixCache {
  /** Class-token features are kept when no block, nor the final norm, trains. */
  readonly keepsFeatures: boolean;
  private readonly sets = new Map<DatasetSource, Map<Transform, KeptSet | 'too-large'>>();
  private bytes = 0;

  /**
   * `from`: the first block that can change (the trainer's firstTrainableBlock; 0 when the
   * embeddings train, which leaves nothing to keep); `budgetBytes`: the most this cache holds.
   */
  constructor(
    readonly model: VisionTransformer,
    readonly from: number,
    readonly budgetBytes: number,
  ) {
    this.keepsFeatures = from === model.blocks.length && model.norm.namedParameters().every(([, variable]) => !variable.trainable);
  }

  /** Whether anything can be kept at all. */
  get useful(): boolean {
    return this.from > 0 && this.budgetBytes > 0;
  }

  get heldBytes(): number {
    return this.bytes;
  }

  /** The kept batches of a set, when a whole earlier pass was kept with the same batch size. */
  lookup(source: DatasetSource, transform: Transform, batchSize: number): readonly FrozenBatch[] | undefined {
    const kept = this.sets.get(source)?.get(transform);
    return kept && kept !== 'too-large' && kept.batchSize === batchSize ? kept.batches : undefined;
  }

  /**
   * Starts keeping a set's batches during a first pass over it; undefined when nothing is to be
   * kept (no frozen prefix, or this set was seen before). The recording gives up, disposing what
   * it held, as soon as the set would pass the budget.
   */
  record(source: DatasetSource, transform: Transform, batchSize: number): FrozenRecording | undefined {
    if (!this.useful || this.sets.get(source)?.has(transform)) return undefined;
    const bySource = this.sets.get(source) ?? new Map<Transform, KeptSet | 'too-large'>();
    this.sets.set(source, bySource);
    const kept: KeptSet = { batchSize, batches: [] };
    bySource.set(transform, kept);
    return {
      add: (batch) => {
        if (bySource.get(transform) !== kept) return;
        const bytes = batch.rows.size * 4;
        if (this.bytes + bytes > this.budgetBytes) {
          this.bytes -= kept.batches.reduce((sum, held) => sum + held.rows.size * 4, 0);
          tf.dispose(kept.batches.map((held) => held.rows));
          bySource.set(transform, 'too-large');
          return;
        }
        this.bytes += bytes;
        kept.batches.push({ ...batch, rows: batch.rows.clone() });
      },
      abandon: () => {
        if (bySource.get(transform) !== kept) return;
        this.bytes -= kept.batches.reduce((sum, held) => sum + held.rows.size * 4, 0);
        tf.dispose(kept.batches.map((held) => held.rows));
        bySource.delete(transform);
      },
    };
  }

  dispose(): void {
    for (const bySource of this.sets.values()) {
      for (const kept of bySource.values()) if (kept !== 'too-large') tf.dispose(kept.batches.map((batch) => batch.rows));
    }
    this.sets.clear();
    this.bytes = 0;
  }
}
