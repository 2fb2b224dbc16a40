// Unit-testing stages in isolation, with mocha and the public API only: the default trainer on a
// fake batch stream (one step per batch, the follow-up hook before the next step, every batch
// disposed, no tensor left behind), and the default evaluator on a tiny random model and data
// made in code. No files, no pipeline: a stage is a plain object with one method.
//
//   mocha dist/examples/trainer-stage.test.js   (npm run examples runs it)

import * as assert from 'node:assert/strict';
import { Observable, lastValueFrom, of, toArray } from 'rxjs';
import { DefaultTrainerStage, DualEvaluator, MemorySource, VisionTransformer, applySurgery, initBackend, resolveTransform, tf } from 'vitpeft';
import type { Batch, EvaluationData, TrainJob } from 'vitpeft';

const CONFIG = { imageSize: 8, patchSize: 4, inChannels: 3, width: 16, depth: 2, heads: 2, mlpHidden: 32, numClasses: 0, layerNormEps: 1e-6 };

/** `count` batches of 4 random 8x8 images; disposed[i] records that batch i was disposed. */
function fakeBatches(count: number, disposed: boolean[]): Observable<Batch> {
  return new Observable<Batch>((subscriber) => {
    for (let step = 0; step < count && !subscriber.closed; step++) {
      const images = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', step) as tf.Tensor4D;
      const labels = tf.tensor1d([0, 1, 0, 1], 'int32');
      disposed[step] = false;
      subscriber.next({
        images,
        labels,
        indices: [0, 1, 2, 3],
        epoch: 0,
        step,
        stepInEpoch: step,
        dispose: () => {
          if (!disposed[step]) tf.dispose([images, labels]);
          disposed[step] = true;
        },
        ack: () => undefined,
      });
    }
    subscriber.complete();
  });
}

function linearProbeJob(steps: number): { job: TrainJob; dispose: () => void } {
  const base = VisionTransformer.init(CONFIG, { seed: 0 });
  const surgery = applySurgery(base, { method: 'linear' }, { classes: 2, seed: 0 });
  base.dispose();
  const job: TrainJob = {
    model: surgery.model,
    trainable: surgery.trainable,
    firstTrainableBlock: surgery.firstTrainableBlock,
    numClasses: 2,
    settings: { steps, batchSize: 4, seed: 0, optimizer: 'sgd', lr: 0.1, momentum: 0.9, schedule: 'constant', warmupSteps: 0 },
  };
  return { job, dispose: () => surgery.model.dispose() };
}

describe('the default trainer stage, alone', () => {
  before(async () => {
    await initBackend('wasm', { threads: 1 });
  });

  it('steps once per batch, runs each follow-up before the next step, and disposes every batch', async () => {
    const { job, dispose } = linearProbeJob(3);
    const tensorsBefore = tf.memory().numTensors;
    const disposed: boolean[] = [];
    const trainer = new DefaultTrainerStage();
    const out = await lastValueFrom(trainer.train(job, fakeBatches(5, disposed), { afterStep: (step) => of(`after ${step.step}`) }).pipe(toArray()));
    const seen = out.map((item) => (typeof item === 'string' ? item : `step ${item.step}`));
    assert.deepEqual(seen, ['step 1', 'after 1', 'step 2', 'after 2', 'step 3', 'after 3']);
    assert.deepEqual(disposed, [true, true, true], 'the 3 batches made (no more were taken) are all disposed');
    assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor left behind (the optimizer state included)');
    for (const item of out) if (typeof item !== 'string') assert.ok(Number.isFinite(item.loss) && item.loss > 0);
    dispose();
  });

  it('changes exactly the trainable variables', async () => {
    const { job, dispose } = linearProbeJob(2);
    const [frozenName, frozen] = job.model.namedParameters().find(([, variable]) => !job.trainable.includes(variable))!;
    const frozenBefore = frozen.dataSync().slice();
    const headBefore = job.trainable[0]!.dataSync().slice();
    await lastValueFrom(new DefaultTrainerStage().train(job, fakeBatches(2, [])).pipe(toArray()));
    assert.deepEqual(frozen.dataSync(), frozenBefore, `${frozenName} is frozen for linear probing`);
    assert.notDeepEqual(job.trainable[0]!.dataSync(), headBefore, 'the head trained');
    dispose();
  });
});

describe('the default evaluator, alone', () => {
  it('measures new-task accuracy and k-NN retention on data made in code, without leaking tensors', async () => {
    const base = VisionTransformer.init(CONFIG, { seed: 1 });
    const model = applySurgery(base, { method: 'linear' }, { classes: 2, seed: 0 }).model;
    base.dispose();
    // 12 8x8 RGB images, dark (class 0) and bright (class 1).
    const pixels = new Uint8Array(12 * 8 * 8 * 3).map((_, i) => (Math.floor(i / 192) % 2 === 0 ? 40 : 220));
    const labels = Array.from({ length: 12 }, (_, n) => n % 2);
    const source = new MemorySource({ description: 'dark vs bright', pixels, shape: [12, 8, 8, 3], labels });
    const transform = resolveTransform('native', { size: 8 });
    const data: EvaluationData = { test: { source, transform }, retention: { bank: source, query: source, transform }, knn: { k: [1, 3], temperature: 0.07 }, batchSize: 5 };
    const tensorsBefore = tf.memory().numTensors;
    const result = await new DualEvaluator().evaluate(model, data, { newTask: true, retention: true, unplugged: false });
    assert.equal(tf.memory().numTensors, tensorsBefore);
    assert.ok(result.newTaskAccuracy! >= 0 && result.newTaskAccuracy! <= 100);
    // The bank is the query set itself: each image's nearest neighbour is itself, so k=1 is exact.
    assert.equal(result.retention?.[1], 100);
    assert.deepEqual(Object.keys(result.retention ?? {}), ['1', '3']);
    model.dispose();
  });
});
