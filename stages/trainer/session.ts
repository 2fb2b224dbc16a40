// One method's training state: the model being trained, its optimizer and schedule position.
// A step computes gradients of the cross-entropy for exactly the surgery's trainable variables,
// updates them, and leaves the tensor count unchanged.

import * as tf from '@tensorflow/tfjs-core';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { crossEntropy, softTargets } from './loss';
import { Optimizer, OptimizerSpec, clipByGlobalNorm, createOptimizer } from './optimizer';
import { ScheduleSpec, learningRate } from './schedule';
import { FeatureCache } from './featureCache';
import { embeddingsTrain, forwardPrefix, forwardSuffix } from './forward';

export interface TrainSettings extends OptimizerSpec, ScheduleSpec {
  readonly batchSize: number;
  readonly seed: number;
  readonly clipGradNorm?: number;
  readonly labelSmoothing?: number;
}

export interface TrainJob {
  readonly model: VisionTransformer;
  readonly trainable: readonly tf.Variable[];
  /** Blocks before this index have nothing to train and run outside the gradient tape (with the embeddings, unless those train). */
  readonly firstTrainableBlock: number;
  readonly numClasses: number;
  readonly settings: TrainSettings;
  /**
   * Linear probing on inputs that are not augmented: keep each example's frozen features and
   * train the head on them (steps then need example ids). Refused unless only the head trains.
   */
  readonly cacheFeatures?: boolean;
}

export interface StepMetrics {
  /** Steps completed, counting this one (1-based). */
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly imagesPerSecond: number;
  readonly gradNorm?: number | undefined;
}

/** Training produced a non-finite loss: the run of this method stops. */
export class DivergedError extends Error {
  constructor(
    readonly step: number,
    readonly lr: number,
    readonly loss: number,
  ) {
    super(`loss became ${loss} at step ${step} (learning rate ${lr.toPrecision(4)}); this method diverged — lower its learning rate`);
    this.name = 'DivergedError';
  }
}

export class TrainingSession {
  readonly optimizer: Optimizer;
  /** Steps completed so far (the schedule position). */
  completedSteps = 0;
  /** The frozen features per example when the job caches them. */
  readonly featureCache: FeatureCache | undefined;

  constructor(readonly job: TrainJob) {
    if (job.trainable.length === 0) throw new Error('nothing to train: the surgery left no trainable variables');
    this.featureCache = job.cacheFeatures ? new FeatureCache(job.model) : undefined;
    this.optimizer = createOptimizer(job.settings, job.trainable);
  }

  /**
   * Runs one optimizer step on a batch (images normalised, labels class indices). With a feature
   * cache, exampleIds name the batch's examples (the same id must always mean the same pixels).
   */
  step(images: tf.Tensor4D, labels: tf.Tensor1D, exampleIds?: readonly number[]): StepMetrics {
    const { model, trainable, firstTrainableBlock, numClasses, settings } = this.job;
    const started = process.hrtime.bigint();
    const lr = learningRate(settings, this.completedSteps);
    const targets = softTargets(labels, numClasses, settings.labelSmoothing ?? 0);
    let value: tf.Scalar;
    let grads: tf.NamedTensorMap;
    if (this.featureCache) {
      if (!exampleIds) throw new Error('this session caches features: give each step the ids of its examples');
      const features = this.featureCache.features(images, exampleIds);
      ({ value, grads } = tf.variableGrads(() => crossEntropy(model.forwardHead(features), targets), trainable as tf.Variable[]));
      tf.dispose([targets, features]);
    } else {
      // Trainable embeddings put the whole network inside the tape (firstTrainableBlock is 0 then).
      const frozen = embeddingsTrain(model) ? undefined : forwardPrefix(model, images, firstTrainableBlock);
      ({ value, grads } = tf.variableGrads(
        () => crossEntropy(frozen ? forwardSuffix(model, frozen, firstTrainableBlock) : forwardSuffix(model, forwardPrefix(model, images, 0), 0), targets),
        trainable as tf.Variable[],
      ));
      tf.dispose([targets, ...(frozen ? [frozen.rows] : [])]);
    }
    const ordered = trainable.map((variable) => grads[variable.name]);
    const unconnected = trainable.filter((variable, i) => !ordered[i]);
    if (unconnected.length > 0) {
      tf.dispose([value, ...Object.values(grads)]);
      throw new Error(`${unconnected.length} trainable variable(s) received no gradient (not trainable, or not used by the forward pass)`);
    }
    const loss = value.dataSync()[0];
    value.dispose();
    let gradNorm: number | undefined;
    try {
      if (!Number.isFinite(loss)) throw new DivergedError(this.completedSteps + 1, lr, loss);
      if (settings.clipGradNorm !== undefined) {
        const clipped = clipByGlobalNorm(ordered, settings.clipGradNorm);
        gradNorm = clipped.norm;
        this.optimizer.apply(clipped.grads, lr);
        tf.dispose(clipped.grads);
      } else {
        this.optimizer.apply(ordered, lr);
      }
    } finally {
      tf.dispose(Object.values(grads));
    }
    this.completedSteps++;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { step: this.completedSteps, loss, lr, imagesPerSecond: images.shape[0] / seconds, gradNorm };
  }

  dispose(): void {
    this.optimizer.dispose();
    this.featureCache?.clear();
  }
}
