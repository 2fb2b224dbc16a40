// Data-only throughput of the dataset stage: images per second through batches() (read,
// transform, normalise, tensor creation; the consumer disposes at once), for the paper's CIFAR
// train transform (32 -> 224 RandomResizedCrop + flip + normalise), its test transform (resize to
// 224), DINO's k-NN transform and the 32x32 path (flip + normalise at native size). Synthetic
// CIFAR-shaped images unless a data URI is given (then cases whose output size varies fail). Run: node dist/bench/dataset.js [--images N] [--batch B] [--workers W] [--data URI]

import * as tf from '@tensorflow/tfjs';
import { concatMap, lastValueFrom } from 'rxjs';
import { createRandom } from '../common/random';
import { batches } from '../stages/dataset/batches';
import { openDataUri } from '../stages/dataset/dataUri';
import { MemorySource } from '../stages/dataset/memorySource';
import { DatasetSource } from '../stages/dataset/source';
import { Timing, timeRuns } from './measure';

export interface DatasetBenchOptions {
  /** Images per case (default 1024). */
  images?: number;
  batchSize?: number;
  /** A data URI to read instead of synthetic 32x32 images. */
  data?: string;
  /** Transform worker threads (default 0: the main thread). */
  workers?: number;
  /** Cases to run (default all). */
  cases?: readonly string[];
  log?: (line: string) => void;
}

export interface DatasetBenchResult {
  readonly name: string;
  readonly transform: string;
  readonly images: number;
  readonly seconds: number;
  readonly imagesPerSecond: number;
}

/** Case name -> transform. On 32x32 images: the paper's train and test paths at 224, DINO's k-NN
 * path, and the 32x32 path (flip + normalise at native size). */
export const DATASET_BENCH_CASES = {
  'train-224': 'paper-train',
  'test-224': 'paper-test',
  'knn-224': 'dino-knn',
  'native-32': 'native-flip',
} as const;

function syntheticCifar(count: number): DatasetSource {
  const random = createRandom(2024);
  const pixels = new Uint8Array(count * 32 * 32 * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = random.nextUint32() & 0xff;
  return new MemorySource({
    description: `synthetic CIFAR-shaped images (${count})`,
    pixels,
    shape: [count, 32, 32, 3],
    labels: Uint8Array.from({ length: count }, (_, i) => i % 100),
  });
}

async function run(source: DatasetSource, transform: string, images: number, batchSize: number, workers: number): Promise<{ seen: number; seconds: number }> {
  const started = process.hrtime.bigint();
  let seen = 0;
  await lastValueFrom(
    batches(source, { batchSize, transform, seed: 1, epochs: Math.ceil(images / source.size), prefetch: 2, workers }).pipe(
      concatMap(async (batch) => {
        seen += batch.images.shape[0];
        batch.dispose();
      }),
    ),
    { defaultValue: undefined },
  );
  return { seen, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** The dataset stage's images per second for one named transform, as `npm run bench` reports it:
 * each timed run pulls `images` synthetic CIFAR-shaped images through batches() (read, transform,
 * normalise, tensor creation) and disposes them. */
export async function measureDatasetTransform(transform: string, options: { batchSize: number; images: number; warmup: number; runs: number }): Promise<Timing> {
  const source = syntheticCifar(options.images); // one epoch of it per timed run
  const tensorsBefore = tf.memory().numTensors;
  const timing = await timeRuns(async () => {
    await run(source, transform, options.images, options.batchSize, 0);
  }, options.warmup, options.runs);
  if (tf.memory().numTensors !== tensorsBefore) throw new Error(`bench: ${tf.memory().numTensors - tensorsBefore} tensors leaked by the dataset stage`);
  return timing;
}

export async function benchDataset(options: DatasetBenchOptions = {}): Promise<DatasetBenchResult[]> {
  const images = options.images ?? 1024;
  const batchSize = options.batchSize ?? 128;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const source = options.data ? await openDataUri(options.data) : syntheticCifar(Math.min(images, 10_000));
  const results: DatasetBenchResult[] = [];
  const tensorsBefore = tf.memory().numTensors;
  for (const [name, transform] of Object.entries(DATASET_BENCH_CASES)) {
    if (options.cases && !options.cases.includes(name)) continue;
    const workers = options.workers ?? 0;
    await run(source, transform, Math.min(batchSize, source.size), batchSize, workers); // warm-up
    const { seen, seconds } = await run(source, transform, images, batchSize, workers);
    const result = { name, transform, images: seen, seconds, imagesPerSecond: seen / seconds };
    results.push(result);
    log(`${name.padEnd(10)} ${transform.padEnd(12)} ${seen} images in ${seconds.toFixed(2)} s: ${result.imagesPerSecond.toFixed(0)} images/s`);
  }
  if (tf.memory().numTensors !== tensorsBefore) throw new Error(`bench: ${tf.memory().numTensors - tensorsBefore} tensors leaked`);
  return results;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const value = (flag: string) => {
    const at = args.indexOf(flag);
    return at === -1 ? undefined : args[at + 1];
  };
  (async () => {
    // Tensor creation only: the plain CPU backend avoids loading wasm for a data-only measurement.
    await tf.setBackend('cpu');
    const images = value('--images');
    const batch = value('--batch');
    const workers = value('--workers');
    process.stdout.write(`dataset throughput (${tf.getBackend()} backend for tensor creation, ${workers ?? 0} transform workers, node ${process.version})\n`);
    await benchDataset({
      images: images ? Number(images) : undefined,
      batchSize: batch ? Number(batch) : undefined,
      workers: workers ? Number(workers) : undefined,
      data: value('--data'),
    });
  })().catch((error) => {
    process.stderr.write(`${(error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  });
}
