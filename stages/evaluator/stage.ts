// The dual evaluator: how well the model does the new task (its head on the test split) and how
// much of the pretraining domain it still knows (DINO's weighted k-NN on class-token features,
// the bank recomputed with the current backbone; optionally with adapters/new blocks unplugged,
// and through the pretrained checkpoint's own head when it had one); optionally also a linear
// probe fitted on the same bank features (linearProbe.ts).

import * as tf from '@tensorflow/tfjs-core';
import { lastValueFrom, tap } from 'rxjs';
import { inject, injectable } from 'tsyringe';
import { Linear } from '../../models/vit/linear';
import { ForwardContext } from '../../models/vit/module';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { TOKENS } from '../../di/tokens';
import { DatasetStage, DefaultDatasetStage } from '../dataset/stage';
import { DatasetSource } from '../dataset/source';
import { Transform } from '../dataset/transforms';
import { FrozenBatch, FrozenPrefixCache } from './frozenPrefixCache';
import { knnAccuracy } from './knn';
import { LinearProbeSettings, linearProbeAccuracy } from './linearProbe';
import { forwardPrefix } from '../trainer/forward';
import { FeatureStore, FeatureStoreOptions } from './featureStore';

export interface EvaluationSet {
  readonly source: DatasetSource;
  readonly transform: Transform;
}

export interface EvaluationData {
  /** The new task's test split (labels index the new head). */
  readonly test: EvaluationSet;
  /** The pretraining domain: bank and queries for k-NN, with their own transform. */
  readonly retention?: { readonly bank: DatasetSource; readonly query: DatasetSource; readonly transform: Transform };
  readonly knn: { readonly k: readonly number[]; readonly temperature: number };
  /** Also fit a linear probe on the bank's features and score it on the queries (absent: not measured). */
  readonly linearProbe?: LinearProbeSettings;
  readonly batchSize: number;
  /** Where k-NN features are kept (JS memory up to a budget, then a file): the bank may exceed the backend's memory. */
  readonly featureStore?: FeatureStoreOptions;
}

export interface EvaluationRequest {
  readonly newTask: boolean;
  readonly retention: boolean;
  /** Also measure retention with adapters removed / added blocks bypassed. */
  readonly unplugged: boolean;
  /** The pretrained checkpoint's head, applied to the current retention-query features. */
  readonly frozenHead?: Linear | null;
  /** The job's kept activations of the blocks that cannot change (see FrozenPrefixCache). */
  readonly frozenPrefix?: FrozenPrefixCache;
}

/** What an evaluator returns; `| undefined` lets one written under exactOptionalPropertyTypes pass "not measured" through. */
export interface EvaluationResult {
  readonly newTaskAccuracy?: number | undefined;
  readonly retention?: Record<number, number> | undefined;
  readonly retentionUnplugged?: Record<number, number> | undefined;
  /** Linear-probe accuracy (%) on the retention queries, when data.linearProbe asks for it. */
  readonly retentionLinear?: number | undefined;
  readonly frozenHeadAccuracy?: number | undefined;
  /** Measurements a custom evaluator adds, by name: they travel on the eval event to subscribers. */
  readonly metrics?: Readonly<Record<string, number>> | undefined;
  readonly seconds: number;
}

export interface EvaluatorStage {
  evaluate(model: VisionTransformer, data: EvaluationData, request: EvaluationRequest): Promise<EvaluationResult>;
}

/** Where a pass keeps what it computes: the job's frozen-prefix cache, and the feature store's limits. */
export interface FeatureOptions {
  readonly cache?: FrozenPrefixCache;
  readonly store?: FeatureStoreOptions;
}

interface FeatureSet {
  readonly features: FeatureStore;
  readonly labels: Int32Array;
  /** Top-1 accuracy (%) of `head` on these images, when a head was given. */
  readonly headAccuracy?: number;
}

function argmaxMatches(logits: tf.Tensor2D, labels: Int32Array, offset: number): number {
  const argmax = tf.argMax(logits, 1);
  const predicted = argmax.dataSync();
  argmax.dispose();
  let correct = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === labels[offset + i]) correct++;
  return correct;
}

/** A first pass's features, computed in two halves so the frozen half is recorded. */
function recordedFeatures(model: VisionTransformer, images: tf.Tensor4D, labels: Int32Array, cache: FrozenPrefixCache, record: (batch: FrozenBatch) => void, context: ForwardContext): tf.Tensor2D {
  if (cache.keepsFeatures) {
    const features = model.embedCls(images, context);
    record({ rows: features, batch: images.shape[0], tokens: 1, labels });
    return features;
  }
  const prefix = forwardPrefix(model, images, cache.from, context);
  try {
    const frozen = { rows: prefix.rows, batch: prefix.batch, tokens: prefix.tokens, labels };
    record(frozen);
    return model.classTokenAfter(frozen.rows, frozen.batch, frozen.tokens, context, cache.from);
  } finally {
    prefix.rows.dispose();
  }
}

/**
 * The default evaluator. The pipeline injects its dataset stage; `new DualEvaluator()` in code
 * (to wrap it, or in a test) reads batches with the default one.
 */
@injectable()
export class DualEvaluator implements EvaluatorStage {
  constructor(@inject(TOKENS.dataset) private readonly dataset: DatasetStage = new DefaultDatasetStage()) {}

  /**
   * Class-token features of every image of a source, in order, kept outside the compute heap (and
   * the head's accuracy, if asked). With a frozen-prefix cache, a set kept by an earlier pass runs
   * only the blocks that can have changed; a first pass is recorded for the next.
   */
  async features(model: VisionTransformer, set: EvaluationSet, batchSize: number, context: ForwardContext, head?: Linear | null, options: FeatureOptions = {}): Promise<FeatureSet> {
    const { cache } = options;
    const { source, transform } = set;
    const store = new FeatureStore(model.width, options.store);
    const labels = new Int32Array(source.size);
    let count = 0;
    let correct = 0;
    const add = (features: tf.Tensor2D, batchLabels: Int32Array) => {
      try {
        store.append(features);
        labels.set(batchLabels, count);
        if (head) {
          const logits = head.forward(features);
          correct += argmaxMatches(logits, labels, count);
          logits.dispose();
        }
        count += batchLabels.length;
      } finally {
        features.dispose();
      }
    };
    const kept = cache?.lookup(source, transform, batchSize);
    const recording = kept ? undefined : cache?.record(source, transform, batchSize);
    try {
      if (kept) {
        for (const batch of kept) add(cache!.keepsFeatures ? batch.rows.clone() : model.classTokenAfter(batch.rows, batch.batch, batch.tokens, context, cache!.from), batch.labels);
      } else {
        await lastValueFrom(
          this.dataset.batches(source, { batchSize, shuffle: false, epochs: 1, transform }).pipe(
            tap((batch) => {
              try {
                const batchLabels = new Int32Array(batch.labels.dataSync());
                add(recording ? recordedFeatures(model, batch.images, batchLabels, cache!, recording.add, context) : model.embedCls(batch.images, context), batchLabels);
              } finally {
                batch.dispose();
              }
            }),
          ),
          { defaultValue: undefined },
        );
      }
      return { features: store, labels: labels.subarray(0, count), headAccuracy: head ? (100 * correct) / Math.max(1, count) : undefined };
    } catch (error) {
      recording?.abandon();
      store.dispose();
      throw error;
    }
  }

  private async retention(model: VisionTransformer, data: EvaluationData, context: ForwardContext, frozenHead?: Linear | null, cache?: FrozenPrefixCache, probe = false) {
    const retention = data.retention!;
    const options = { cache, store: data.featureStore };
    const bank = await this.features(model, { source: retention.bank, transform: retention.transform }, data.batchSize, context, null, options);
    try {
      const query = await this.features(model, { source: retention.query, transform: retention.transform }, data.batchSize, context, frozenHead, options);
      try {
        const numClasses = Math.max(retention.bank.numClasses, retention.query.numClasses);
        const accuracy = knnAccuracy(bank, query, { k: data.knn.k, temperature: data.knn.temperature, numClasses });
        const linear = probe && data.linearProbe ? linearProbeAccuracy(bank, query, { ...data.linearProbe, numClasses }) : undefined;
        return { accuracy: Object.fromEntries(accuracy) as Record<number, number>, linear, frozenHeadAccuracy: query.headAccuracy };
      } finally {
        query.features.dispose();
      }
    } finally {
      bank.features.dispose();
    }
  }

  async evaluate(model: VisionTransformer, data: EvaluationData, request: EvaluationRequest): Promise<EvaluationResult> {
    const started = Date.now();
    let newTaskAccuracy: number | undefined;
    if (request.newTask) {
      if (!model.head) throw new Error('cannot measure new-task accuracy: the model has no head');
      const test = await this.features(model, data.test, data.batchSize, {}, model.head, { cache: request.frozenPrefix });
      test.features.dispose();
      newTaskAccuracy = test.headAccuracy;
    }
    let retention: Record<number, number> | undefined;
    let retentionUnplugged: Record<number, number> | undefined;
    let retentionLinear: number | undefined;
    let frozenHeadAccuracy: number | undefined;
    if (request.retention && data.retention) {
      const current = await this.retention(model, data, {}, request.frozenHead, request.frozenPrefix, true);
      retention = current.accuracy;
      retentionLinear = current.linear;
      frozenHeadAccuracy = current.frozenHeadAccuracy;
      if (request.unplugged) retentionUnplugged = (await this.retention(model, data, { unplugged: true }, null, request.frozenPrefix)).accuracy;
    }
    // Left out when not measured, so results compare equal to those of evaluators that never measure it.
    const linear = retentionLinear === undefined ? {} : { retentionLinear };
    return { newTaskAccuracy, retention, retentionUnplugged, ...linear, frozenHeadAccuracy, seconds: (Date.now() - started) / 1000 };
  }
}
