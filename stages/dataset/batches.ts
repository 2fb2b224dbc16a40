// The batch stream: shuffled, seeded mini-batches of a source as an Observable, with bounded
// prefetch. Backpressure works by acknowledgement: every emitted Batch counts as outstanding until
// the consumer calls batch.dispose() (frees its tensors and acknowledges) or batch.ack()
// (acknowledges only; the consumer keeps the tensors and must dispose them itself). The producer
// builds the next batch only while fewer than `prefetch` batches are outstanding, so however slow
// the consumer, at most `prefetch` unacknowledged batches exist (the one being built included),
// and buffering operators such as concatMap never hold more than that. A consumer that neither
// disposes nor acknowledges stalls the stream after `prefetch` batches.
//
// Determinism: epoch e visits the source in permutation(createRandom(seed, SHUFFLE, e)); image i
// of epoch e is transformed with createRandom(seed, AUGMENT, e, i). The same seed gives the same
// batches bit for bit, whatever the batch size, prefetch, consumer speed or resume point.
//
// Ownership: a Batch belongs to whoever receives it, also after unsubscribing. Batches the
// producer built but never emitted (it was unsubscribed meanwhile) are disposed by the producer.

import * as tf from '@tensorflow/tfjs-core';
import { Observable } from 'rxjs';
import { createRandom, permutation } from '../../common/random';
import { DatasetSource, Sample } from './source';
import { TransformPool } from './transformPool';
import { Transform, TransformSpec, resolveTransform } from './transforms';

export interface Batch {
  /** float32 [B, H, W, 3], normalised by the transform. */
  readonly images: tf.Tensor4D;
  /** int32 [B] class indices (-1 for unlabelled images). */
  readonly labels: tf.Tensor1D;
  /** The source index of each image. */
  readonly indices: readonly number[];
  /** 0-based epoch this batch belongs to. */
  readonly epoch: number;
  /** 0-based step counted across epochs (with startStep, the first batch has step = startStep). */
  readonly step: number;
  /** 0-based step within the epoch. */
  readonly stepInEpoch: number;
  /** Disposes images and labels and acknowledges the batch. Idempotent. */
  dispose(): void;
  /** Acknowledges without disposing: the consumer keeps the tensors and disposes them later. */
  ack(): void;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Seed of the shuffle and of the random transforms (default 0). */
  seed?: number;
  /** Number of epochs (default 1); Infinity streams until the subscriber stops. */
  epochs?: number;
  /** Drop each epoch's last, smaller batch (default false). */
  dropLast?: boolean;
  /** A transform name (see NAMED_TRANSFORMS), a spec or a Transform (default 'native'). */
  transform?: string | TransformSpec | Transform;
  /** Maximum number of unacknowledged batches, the one being built included (default 2). */
  prefetch?: number;
  /** First step to produce, for resuming: earlier steps are skipped without being built (default 0). */
  startStep?: number;
  /** Images read at once while building a batch (decoding runs off the main thread; default 8). */
  concurrency?: number;
  /**
   * Worker threads for the per-image transform (default 0: the main thread). The pixels are the
   * same either way; workers pay off for large images (the DINO k-NN transform on ImageNet).
   */
  workers?: number;
}

const SHUFFLE = 0x5348;
const AUGMENT = 0x4147;

export function stepsPerEpoch(size: number, batchSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(size / batchSize) : Math.ceil(size / batchSize);
}

function checkInteger(name: string, value: number, min: number, allowInfinity = false): void {
  if (allowInfinity && value === Infinity) return;
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`batches: ${name} must be an integer >= ${min}, got ${value}`);
}

/** The source indices of each step of an epoch. */
export function epochOrder(size: number, options: { shuffle?: boolean; seed?: number }, epoch: number): Uint32Array {
  if (options.shuffle === false) {
    const order = new Uint32Array(size);
    for (let i = 0; i < size; i++) order[i] = i;
    return order;
  }
  return permutation(size, createRandom(options.seed ?? 0, SHUFFLE, epoch));
}

interface BuildContext {
  source: DatasetSource;
  transform: Transform;
  pool?: TransformPool;
  seed: number;
  concurrency: number;
}

async function buildBatch(
  context: BuildContext,
  indices: readonly number[],
  epoch: number,
  step: number,
): Promise<{ images: Float32Array; shape: [number, number, number, number]; labels: Int32Array; indices: number[] } | null> {
  const { source, transform, pool, seed, concurrency } = context;
  // Up to `concurrency` reads run ahead of the image being transformed (decoding happens off the
  // main thread), so decoding and transforming overlap.
  const reads: Array<Promise<Sample | null>> = [];
  const readAhead = (position: number): void => {
    while (reads.length < indices.length && reads.length < position + concurrency) {
      const read = source.read(indices[reads.length]);
      read.catch(() => undefined); // awaited, and so reported, in order below
      reads.push(read);
    }
  };
  const kept: number[] = [];
  const labels: number[] = [];
  let buffer: Float32Array | undefined;
  let height = 0;
  let width = 0;
  let firstIndex = -1;
  const place = (index: number, imageHeight: number, imageWidth: number): number => {
    if (!buffer) {
      height = imageHeight;
      width = imageWidth;
      firstIndex = index;
      buffer = new Float32Array(indices.length * height * width * 3);
    } else if (imageHeight !== height || imageWidth !== width) {
      throw new Error(
        `${source.description}: at step ${step}, image ${index} is ${imageHeight}x${imageWidth} after the transform but image ${firstIndex} is ${height}x${width}; ` +
          `use a transform that makes every image the same size (e.g. paper-test or dino-knn)`,
      );
    }
    return kept.length * height * width * 3;
  };
  const transformed: Array<Promise<{ height: number; width: number; data: Float32Array }>> = [];
  for (let position = 0; position < indices.length; position++) {
    readAhead(position);
    const sample = await reads[position];
    if (!sample) continue;
    const index = indices[position];
    if (pool) {
      const job = pool.run(sample, [seed, AUGMENT, epoch, index]);
      job.catch(() => undefined); // awaited in order below
      transformed.push(job);
    } else {
      const image = transform.apply(sample, createRandom(seed, AUGMENT, epoch, index));
      const offset = place(index, image.height, image.width);
      transform.writeNormalized(image, buffer!, offset);
    }
    kept.push(index);
    labels.push(sample.label);
  }
  if (pool) {
    const order = [...kept];
    kept.length = 0;
    for (let i = 0; i < transformed.length; i++) {
      const image = await transformed[i];
      const offset = place(order[i], image.height, image.width);
      buffer!.set(image.data, offset);
      kept.push(order[i]);
    }
  }
  if (!buffer || kept.length === 0) return null;
  const used = kept.length * height * width * 3;
  return {
    images: used === buffer.length ? buffer : buffer.slice(0, used), // a copy: some backends read the whole underlying buffer
    shape: [kept.length, height, width, 3],
    labels: Int32Array.from(labels),
    indices: kept,
  };
}

/**
 * A cold Observable of the source's batches: each subscription runs its own producer from
 * `startStep`. Completes after the last epoch; errors (unreadable files, mismatched sizes) arrive
 * as Observable errors.
 */
export function batches(source: DatasetSource, options: BatchOptions): Observable<Batch> {
  const batchSize = options.batchSize;
  const epochs = options.epochs ?? 1;
  const dropLast = options.dropLast ?? false;
  const prefetch = options.prefetch ?? 2;
  const startStep = options.startStep ?? 0;
  const concurrency = options.concurrency ?? 8;
  const seed = options.seed ?? 0;
  checkInteger('batchSize', batchSize, 1);
  checkInteger('epochs', epochs, 0, true);
  checkInteger('prefetch', prefetch, 1, true);
  checkInteger('startStep', startStep, 0);
  checkInteger('concurrency', concurrency, 1);
  checkInteger('seed', seed, 0);
  const workers = options.workers ?? 0;
  checkInteger('workers', workers, 0);
  const transform = resolveTransform(options.transform ?? 'native');
  const perEpoch = stepsPerEpoch(source.size, batchSize, dropLast);
  if (perEpoch === 0 && epochs > 0) {
    throw new Error(`${source.description}: ${source.size} images make no batch of ${batchSize}${dropLast ? ' with dropLast' : ''}`);
  }

  return new Observable<Batch>((subscriber) => {
    let closed = false;
    let outstanding = 0;
    let wake: (() => void) | undefined;
    const signal = (): void => {
      const resume = wake;
      wake = undefined;
      resume?.();
    };

    const pool = workers > 0 ? new TransformPool(transform, workers) : undefined;
    const context: BuildContext = { source, transform, pool, seed, concurrency };

    const produce = async (): Promise<void> => {
      let order: Uint32Array | undefined;
      let orderEpoch = -1;
      for (let step = startStep; Math.floor(step / perEpoch) < epochs; step++) {
        while (outstanding >= prefetch && !closed) await new Promise<void>((resolve) => (wake = resolve));
        if (closed) return;
        const epoch = Math.floor(step / perEpoch);
        const stepInEpoch = step - epoch * perEpoch;
        if (epoch !== orderEpoch) {
          order = epochOrder(source.size, { shuffle: options.shuffle, seed }, epoch);
          orderEpoch = epoch;
        }
        const indices = Array.from(order!.subarray(stepInEpoch * batchSize, Math.min(source.size, (stepInEpoch + 1) * batchSize)));
        // Counted before building, so that building happens only below the bound.
        outstanding++;
        let built: Awaited<ReturnType<typeof buildBatch>>;
        try {
          built = await buildBatch(context, indices, epoch, step);
        } catch (error) {
          outstanding--;
          throw error;
        }
        if (closed || !built) {
          outstanding--;
          if (closed) return;
          continue; // every image of this step was unreadable and skipped
        }
        const images = tf.tensor4d(built.images, built.shape, 'float32');
        const labels = tf.tensor1d(built.labels, 'int32');
        let acknowledged = false;
        const ack = (): void => {
          if (acknowledged) return;
          acknowledged = true;
          outstanding--;
          signal();
        };
        let disposed = false;
        subscriber.next({
          images,
          labels,
          indices: built.indices,
          epoch,
          step,
          stepInEpoch,
          ack,
          dispose: () => {
            if (!disposed) {
              disposed = true;
              images.dispose();
              labels.dispose();
            }
            ack();
          },
        });
      }
      subscriber.complete();
    };

    produce()
      .catch((error) => {
        if (!closed) subscriber.error(error);
      })
      .finally(() => void pool?.close());
    return () => {
      closed = true;
      signal();
    };
  });
}
