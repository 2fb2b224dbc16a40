// The dual evaluator: how well the model does the new task (its head on the test split) and how
// much of the pretraining domain it still knows (DINO's weighted k-NN on class-token features,
// the bank recomputed with the current backbone; optionally with adapters/new blocks unplugged,
// and through the pretrained checkpoint's own head when it had one).

import * as tf from '@tensorflow/tfjs';
import { lastValueFrom, tap } from 'rxjs';
import { inject, injectable } from 'tsyringe';
import { Linear } from '../../models/vit/linear';
import { ForwardContext } from '../../models/vit/module';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { TOKENS } from '../../di/tokens';
import type { DatasetStage } from '../dataset/stage';
import { DatasetSource } from '../dataset/source';
import { Transform } from '../dataset/transforms';
import { knnAccuracy } from './knn';
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
}

export interface EvaluationResult {
  readonly newTaskAccuracy?: number;
  readonly retention?: Record<number, number>;
  readonly retentionUnplugged?: Record<number, number>;
  readonly frozenHeadAccuracy?: number;
  readonly seconds: number;
}

export interface EvaluatorStage {
  evaluate(model: VisionTransformer, data: EvaluationData, request: EvaluationRequest): Promise<EvaluationResult>;
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

@injectable()
export class DualEvaluator implements EvaluatorStage {
  constructor(@inject(TOKENS.dataset) private readonly dataset: DatasetStage) {}

  /** Class-token features of every image of a source, in order, kept outside the compute heap (and the head's accuracy, if asked). */
  async features(model: VisionTransformer, set: EvaluationSet, batchSize: number, context: ForwardContext, head?: Linear | null, storeOptions?: FeatureStoreOptions): Promise<FeatureSet> {
    const { source, transform } = set;
    const store = new FeatureStore(model.width, storeOptions);
    const labels = new Int32Array(source.size);
    let count = 0;
    let correct = 0;
    try {
      await lastValueFrom(
        this.dataset.batches(source, { batchSize, shuffle: false, epochs: 1, transform }).pipe(
          tap((batch) => {
            try {
              const features = model.embedCls(batch.images, context);
              try {
                store.append(features);
                const batchLabels = batch.labels.dataSync();
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
            } finally {
              batch.dispose();
            }
          }),
        ),
        { defaultValue: undefined },
      );
      return { features: store, labels: labels.subarray(0, count), headAccuracy: head ? (100 * correct) / Math.max(1, count) : undefined };
    } catch (error) {
      store.dispose();
      throw error;
    }
  }

  private async retention(model: VisionTransformer, data: EvaluationData, context: ForwardContext, frozenHead?: Linear | null) {
    const retention = data.retention!;
    const bank = await this.features(model, { source: retention.bank, transform: retention.transform }, data.batchSize, context, undefined, data.featureStore);
    try {
      const query = await this.features(model, { source: retention.query, transform: retention.transform }, data.batchSize, context, frozenHead, data.featureStore);
      try {
        const numClasses = Math.max(retention.bank.numClasses, retention.query.numClasses);
        const accuracy = knnAccuracy(bank, query, { k: data.knn.k, temperature: data.knn.temperature, numClasses });
        return { accuracy: Object.fromEntries(accuracy) as Record<number, number>, frozenHeadAccuracy: query.headAccuracy };
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
      const test = await this.features(model, data.test, data.batchSize, {}, model.head);
      test.features.dispose();
      newTaskAccuracy = test.headAccuracy;
    }
    let retention: Record<number, number> | undefined;
    let retentionUnplugged: Record<number, number> | undefined;
    let frozenHeadAccuracy: number | undefined;
    if (request.retention && data.retention) {
      const current = await this.retention(model, data, {}, request.frozenHead);
      retention = current.accuracy;
      frozenHeadAccuracy = current.frozenHeadAccuracy;
      if (request.unplugged) retentionUnplugged = (await this.retention(model, data, { unplugged: true })).accuracy;
    }
    return { newTaskAccuracy, retention, retentionUnplugged, frozenHeadAccuracy, seconds: (Date.now() - started) / 1000 };
  }
}
