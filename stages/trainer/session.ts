// One method's training state: the model being trained, its optimizer and schedule position.
// A step computes gradients of the cross-entropy for exactly the surgery's trainable variables,
// updates them, and leaves the tensor count unchanged. With a micro-batch smaller than the batch
// (gradient accumulation) the batch goes through forward and backward in slices whose gradients,
// each of the slice's loss scaled by its share of the batch, sum to the whole batch's mean-loss
// gradient; one optimizer update follows, so a step means the same thing either way.

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
  /** Examples per forward/backward pass (gradient accumulation); the whole batch when absent or larger. */
  readonly microBatch?: number;
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

/** A step ran out of memory: the run of this method stops; the message says what to change. */
export class OutOfMemoryError extends Error {
  constructor(
    readonly step: number,
    readonly batch: number,
    readonly microBatch: number,
    readonly detail: string,
  ) {
    super(
      `out of memory in training step ${step} (batch ${batch}${microBatch < batch ? ` as micro-batches of ${microBatch}` : ''}): ` +
        `set train.microBatch to ${Math.max(1, Math.floor(microBatch / 2))} or lower, or use a smaller model or image size (${detail})`,
    );
    this.name = 'OutOfMemoryError';
  }
}

/** Whether an error is the backend running out of memory (wasm's abort or failed heap growth, a failed allocation). */
export function isOutOfMemory(error: unknown): boolean {
  const text = error instanceof Error ? `${error.name} ${error.message}` : String(error);
  return /Aborted\(|out of memory|Cannot enlarge memory|Array buffer allocation failed|\bOOM\b|RangeError: .*(Array buffer|allocation)/i.test(text);
}

interface Gradients {
  /** The loss of the slice as passed to the tape (scaled by the slice's share of the batch). */
  readonly loss: number;
  readonly grads: tf.Tensor[];
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
    const { settings } = this.job;
    const started = process.hrtime.bigint();
    const lr = learningRate(settings, this.completedSteps);
    const batch = images.shape[0];
    const micro = Math.min(this.job.microBatch ?? batch, batch);
    if (this.featureCache && !exampleIds) throw new Error('this session caches features: give each step the ids of its examples');
    let accumulated: Gradients;
    try {
      accumulated = micro >= batch ? this.gradients(images, labels, exampleIds, 1) : this.accumulate(images, labels, exampleIds, micro);
    } catch (error) {
      if (isOutOfMemory(error)) throw new OutOfMemoryError(this.completedSteps + 1, batch, micro, (error as Error).message.split('\n')[0]);
      throw error;
    }
    const { loss, grads: ordered } = accumulated;
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
      tf.dispose(ordered);
    }
    this.completedSteps++;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { step: this.completedSteps, loss, lr, imagesPerSecond: batch / seconds, gradNorm };
  }

  /** The batch in slices of `micro`: gradients summed, each slice's mean loss weighted by its share of the batch. */
  private accumulate(images: tf.Tensor4D, labels: tf.Tensor1D, exampleIds: readonly number[] | undefined, micro: number): Gradients {
    const batch = images.shape[0];
    let loss = 0;
    let sums: tf.Tensor[] | undefined;
    try {
      for (let start = 0; start < batch; start += micro) {
        const size = Math.min(micro, batch - start);
        const slice = tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1]);
        const sliceLabels = tf.slice(labels, [start], [size]);
        let part: Gradients;
        try {
          part = this.gradients(slice, sliceLabels, exampleIds?.slice(start, start + size), size / batch);
        } finally {
          tf.dispose([slice, sliceLabels]);
        }
        loss += part.loss;
        if (!sums) {
          sums = part.grads;
        } else {
          const previous = sums;
          sums = previous.map((sum, i) => tf.add(sum, part.grads[i]));
          tf.dispose([...previous, ...part.grads]);
        }
      }
    } catch (error) {
      if (sums) tf.dispose(sums);
      throw error;
    }
    return { loss, grads: sums! };
  }

  /** Gradients of weight x (mean cross-entropy over these examples), in the order of the trainable variables. */
  private gradients(images: tf.Tensor4D, labels: tf.Tensor1D, exampleIds: readonly number[] | undefined, weight: number): Gradients {
    const { model, trainable, firstTrainableBlock, numClasses, settings } = this.job;
    const targets = softTargets(labels, numClasses, settings.labelSmoothing ?? 0);
    // A weight of 1 (the whole batch) leaves the loss untouched, so a step without accumulation is unchanged bit for bit.
    const weighted = (loss: tf.Scalar): tf.Scalar => (weight === 1 ? loss : tf.mul(loss, weight));
    let value: tf.Scalar;
    let grads: tf.NamedTensorMap;
    if (this.featureCache) {
      const features = this.featureCache.features(images, exampleIds!);
      try {
        ({ value, grads } = tf.variableGrads(() => weighted(crossEntropy(model.forwardHead(features), targets)), trainable as tf.Variable[]));
      } finally {
        tf.dispose([targets, features]);
      }
    } else {
      // Trainable embeddings put the whole network inside the tape (firstTrainableBlock is 0 then).
      const frozen = embeddingsTrain(model) ? undefined : forwardPrefix(model, images, firstTrainableBlock);
      try {
        ({ value, grads } = tf.variableGrads(
          () => weighted(crossEntropy(frozen ? forwardSuffix(model, frozen, firstTrainableBlock) : forwardSuffix(model, forwardPrefix(model, images, 0), 0), targets)),
          trainable as tf.Variable[],
        ));
      } finally {
        tf.dispose([targets, ...(frozen ? [frozen.rows] : [])]);
      }
    }
    const ordered = trainable.map((variable) => grads[variable.name]);
    const unconnected = trainable.filter((variable, i) => !ordered[i]);
    if (unconnected.length > 0) {
      tf.dispose([value, ...Object.values(grads)]);
      throw new Error(`${unconnected.length} trainable variable(s) received no gradient (not trainable, or not used by the forward pass)`);
    }
    const loss = value.dataSync()[0];
    value.dispose();
    return { loss, grads: ordered };
  }

  dispose(): void {
    this.optimizer.dispose();
    this.featureCache?.clear();
  }
}
