import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { concatMap, lastValueFrom, take, tap, toArray } from 'rxjs';
import { Batch, BatchOptions, batches, epochOrder } from '../../stages/dataset/batches';
import { MemorySource } from '../../stages/dataset/memorySource';
import { DatasetSource, Sample } from '../../stages/dataset/source';
import { TransformSpec } from '../../stages/dataset/transforms';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** n grey 4x4 images; every pixel of image i is i, label i % 3. */
function tinySource(n: number): MemorySource {
  return new MemorySource({
    description: 'tiny',
    pixels: Uint8Array.from({ length: n * 16 }, (_, p) => Math.floor(p / 16)),
    shape: [n, 4, 4, 1],
    labels: Uint8Array.from({ length: n }, (_, i) => i % 3),
  });
}

/** n RGB 12x12 noise images, for random crops. */
function noiseSource(n: number): MemorySource {
  let state = 12345;
  const pixels = Uint8Array.from({ length: n * 12 * 12 * 3 }, () => (state = (state * 1103515245 + 12345) >>> 0) >>> 24);
  return new MemorySource({ description: 'noise', pixels, shape: [n, 12, 12, 3], labels: Uint8Array.from({ length: n }, (_, i) => i % 5) });
}

const SMALL_TRAIN: TransformSpec = {
  steps: [
    { op: 'randomResizedCrop', size: 8, scale: [0.08, 1], ratio: [3 / 4, 4 / 3] },
    { op: 'horizontalFlip', p: 0.5 },
  ],
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
};

interface Collected {
  images: Float32Array;
  shape: number[];
  labels: number[];
  indices: number[];
  epoch: number;
  step: number;
  stepInEpoch: number;
}

async function collect(source: DatasetSource, options: BatchOptions): Promise<Collected[]> {
  return lastValueFrom(
    batches(source, options).pipe(
      concatMap(async (batch) => {
        const collected = {
          images: (await batch.images.data()) as Float32Array,
          shape: batch.images.shape,
          labels: [...(await batch.labels.data())],
          indices: [...batch.indices],
          epoch: batch.epoch,
          step: batch.step,
          stepInEpoch: batch.stepInEpoch,
        };
        batch.dispose();
        return collected;
      }),
      toArray(),
    ),
  );
}

function bytesOf(batches: Collected[]): Buffer {
  return Buffer.concat(batches.map((b) => Buffer.from(b.images.buffer, b.images.byteOffset, b.images.byteLength)));
}

describe('dataset: batch stream', () => {
  it('batches in order without shuffle: shapes, normalised grey-as-RGB pixels, labels, steps', async () => {
    const result = await collect(tinySource(10), { batchSize: 4, shuffle: false, transform: 'native' });
    expect(result.map((b) => b.shape)).to.deep.equal([
      [4, 4, 4, 3],
      [4, 4, 4, 3],
      [2, 4, 4, 3],
    ]);
    expect(result.map((b) => b.indices)).to.deep.equal([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(result[2].labels).to.deep.equal([2, 0]);
    expect(result.map((b) => [b.epoch, b.step, b.stepInEpoch])).to.deep.equal([
      [0, 0, 0],
      [0, 1, 1],
      [0, 2, 2],
    ]);
    // Image 9, any pixel, any channel: (9/255 - 0.5) / 0.5.
    expect(result[2].images[16 * 3 + 5]).to.equal(Math.fround((9 / 255 - 0.5) / 0.5));
  });

  it('drops the last smaller batch with dropLast, and visits every image once per shuffled epoch', async () => {
    const dropped = await collect(tinySource(10), { batchSize: 4, dropLast: true, shuffle: false });
    expect(dropped.map((b) => b.indices.length)).to.deep.equal([4, 4]);
    const shuffled = await collect(tinySource(10), { batchSize: 3, epochs: 2, seed: 1 });
    expect(shuffled).to.have.length(8);
    for (const epoch of [0, 1]) {
      const seen = shuffled.filter((b) => b.epoch === epoch).flatMap((b) => b.indices);
      expect([...seen].sort((a, b) => a - b)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
    const firstEpoch = shuffled.filter((b) => b.epoch === 0).flatMap((b) => b.indices);
    const secondEpoch = shuffled.filter((b) => b.epoch === 1).flatMap((b) => b.indices);
    expect(firstEpoch).to.not.deep.equal(secondEpoch);
    expect(firstEpoch).to.deep.equal([...epochOrder(10, { seed: 1 }, 0)]);
    expect(shuffled.map((b) => b.step)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('gives the same batches bit for bit for the same seed, across runs, batch sizes and resume points', async () => {
    const options: BatchOptions = { batchSize: 4, epochs: 2, seed: 42, transform: SMALL_TRAIN, prefetch: 3 };
    const first = await collect(noiseSource(10), options);
    const second = await collect(noiseSource(10), { ...options, prefetch: 1 });
    expect(first.map((b) => b.indices)).to.deep.equal(second.map((b) => b.indices));
    expect(bytesOf(first).equals(bytesOf(second))).to.equal(true);
    const otherSeed = await collect(noiseSource(10), { ...options, seed: 43 });
    expect(bytesOf(first).equals(bytesOf(otherSeed))).to.equal(false);

    // Pixels depend on (seed, epoch, index) only: a batch size of 1 sees the same images.
    const single = await collect(noiseSource(10), { ...options, batchSize: 1 });
    const imageBytes = 8 * 8 * 3;
    const byKey = new Map(single.map((b) => [`${b.epoch}/${b.indices[0]}`, b.images]));
    for (const batch of first) {
      batch.indices.forEach((index, position) => {
        const alone = byKey.get(`${batch.epoch}/${index}`)!;
        expect([...batch.images.subarray(position * imageBytes, (position + 1) * imageBytes)]).to.deep.equal([...alone]);
      });
    }

    // Resuming at step 4 (epoch 1, step 1) reproduces the rest of the run.
    const resumed = await collect(noiseSource(10), { ...options, startStep: 4 });
    expect(resumed.map((b) => b.step)).to.deep.equal([4, 5]);
    expect(bytesOf(resumed).equals(bytesOf(first.slice(4)))).to.equal(true);
  });

  it('gives the same pixels with the transform in worker threads, and reports their errors', async () => {
    const options: BatchOptions = { batchSize: 4, epochs: 2, seed: 42, transform: SMALL_TRAIN };
    const mainThread = await collect(noiseSource(10), options);
    const threaded = await collect(noiseSource(10), { ...options, workers: 2 });
    expect(threaded.map((b) => b.indices)).to.deep.equal(mainThread.map((b) => b.indices));
    expect(threaded.map((b) => b.labels)).to.deep.equal(mainThread.map((b) => b.labels));
    expect(bytesOf(threaded).equals(bytesOf(mainThread))).to.equal(true);
    const mixed: DatasetSource = {
      description: 'mixed',
      size: 2,
      numClasses: 1,
      labelOf: () => 0,
      read: async (i) => ({ pixels: new Uint8Array((i + 1) * (i + 1) * 5), height: i + 1, width: i + 1, channels: 5, label: 0 }),
    };
    try {
      await collect(mixed, { batchSize: 2, workers: 1 });
      expect.fail('should have thrown');
    } catch (caught) {
      expect((caught as Error).message).to.match(/images with 5 channels are not supported/);
    }
  });

  it('never lets the producer run more than `prefetch` batches ahead of a slow consumer', async () => {
    for (const prefetch of [1, 3]) {
      const source = tinySource(24);
      let reads = 0;
      let acknowledged = 0;
      let worst = 0;
      const counting: DatasetSource = {
        ...source,
        description: source.description,
        size: source.size,
        numClasses: source.numClasses,
        labelOf: (i) => source.labelOf(i),
        read: (i): Promise<Sample> => {
          reads++;
          // Batches started (one read in flight counts its batch) minus batches acknowledged.
          worst = Math.max(worst, Math.ceil(reads / 2) - acknowledged);
          return source.read(i);
        },
      };
      let received = 0;
      await lastValueFrom(
        batches(counting, { batchSize: 2, shuffle: false, prefetch }).pipe(
          concatMap(async (batch: Batch) => {
            received++;
            await sleep(15); // a slow consumer
            acknowledged++;
            batch.dispose();
          }),
        ),
      );
      expect(received).to.equal(12);
      expect(worst, `prefetch ${prefetch}`).to.equal(prefetch);
    }
  });

  it('keeps the tensor count flat across an epoch and back at the start after it', async () => {
    const source = noiseSource(40);
    for (const prefetch of [1, 3]) {
      const before = tf.memory().numTensors;
      const afterEachDispose: number[] = [];
      await lastValueFrom(
        batches(source, { batchSize: 4, transform: SMALL_TRAIN, prefetch }).pipe(
          concatMap(async (batch) => {
            const logits = tf.tidy(() => batch.images.mean([1, 2, 3]));
            await logits.data();
            logits.dispose();
            batch.dispose();
            afterEachDispose.push(tf.memory().numTensors - before);
          }),
        ),
      );
      expect(afterEachDispose).to.have.length(10);
      // Only batches already emitted and not yet consumed (at most prefetch - 1, two tensors each) remain.
      expect(Math.max(...afterEachDispose)).to.be.at.most(2 * (prefetch - 1));
      expect(afterEachDispose[afterEachDispose.length - 1]).to.equal(0);
      if (prefetch === 1) expect(new Set(afterEachDispose)).to.deep.equal(new Set([0]));
      expect(tf.memory().numTensors).to.equal(before);
    }
  });

  it('stops producing and leaks nothing when the consumer unsubscribes early', async () => {
    const before = tf.memory().numTensors;
    // ack() on arrival: the consumer keeps the tensors (and must dispose them) but lets the producer go on.
    const taken = await lastValueFrom(
      batches(noiseSource(40), { batchSize: 4, epochs: Infinity, prefetch: 2 }).pipe(
        tap((batch) => batch.ack()),
        take(3),
        toArray(),
      ),
    );
    expect(taken.map((b) => b.step)).to.deep.equal([0, 1, 2]);
    taken.forEach((b) => b.dispose());
    await sleep(20);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('reports read errors and mismatched image sizes as stream errors', async () => {
    const source = tinySource(4);
    const failing: DatasetSource = {
      description: 'failing',
      size: 4,
      numClasses: 3,
      labelOf: (i) => source.labelOf(i),
      read: (i) => (i === 2 ? Promise.reject(new Error('disk on fire')) : source.read(i)),
    };
    const before = tf.memory().numTensors;
    let error: unknown;
    try {
      await collect(failing, { batchSize: 2, shuffle: false });
    } catch (caught) {
      error = caught;
    }
    expect((error as Error).message).to.equal('disk on fire');
    await sleep(20); // the consumer was still finishing (and then disposed) the batch before the failure
    expect(tf.memory().numTensors).to.equal(before);

    const mixed: DatasetSource = {
      description: 'mixed',
      size: 2,
      numClasses: 1,
      labelOf: () => 0,
      read: async (i) => ({ pixels: new Uint8Array((i + 1) * (i + 1) * 3), height: i + 1, width: i + 1, channels: 3, label: 0 }),
    };
    try {
      await collect(mixed, { batchSize: 2, shuffle: false });
      expect.fail('should have thrown');
    } catch (caught) {
      expect((caught as Error).message).to.match(/^mixed: at step 0, image 1 is 2x2 after the transform but image 0 is 1x1; use a transform/);
    }
  });

  it('leaves skipped (unreadable) images out of their batch, and skips a batch with none left', async () => {
    const source = tinySource(6);
    const holey: DatasetSource = {
      description: 'holey',
      size: 6,
      numClasses: 3,
      labelOf: (i) => source.labelOf(i),
      read: (i) => (i === 1 || i === 4 || i === 5 ? Promise.resolve(null) : source.read(i)),
    };
    const result = await collect(holey, { batchSize: 2, shuffle: false });
    expect(result.map((b) => [b.step, b.indices])).to.deep.equal([
      [0, [0]],
      [1, [2, 3]],
    ]);
  });

  it('validates its options', () => {
    expect(() => batches(tinySource(3), { batchSize: 0 })).to.throw(/batchSize must be an integer >= 1, got 0/);
    expect(() => batches(tinySource(3), { batchSize: 4, dropLast: true })).to.throw(/3 images make no batch of 4 with dropLast/);
    expect(() => batches(tinySource(3), { batchSize: 1, prefetch: 0 })).to.throw(/prefetch must be an integer >= 1/);
  });
});
