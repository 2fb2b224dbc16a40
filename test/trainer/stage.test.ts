// Marble tests of the trainer stage's stream logic: one step per batch, the afterStep follow-up
// emitted before the next step, the batch stream unsubscribed as soon as the last step is done,
// and every batch disposed (acknowledged) by the trainer.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { EMPTY, map, of } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { Batch } from '../../stages/dataset/batches';
import { applySurgery } from '../../stages/surgery';
import { DefaultTrainerStage } from '../../stages/trainer/stage';
import { TrainJob } from '../../stages/trainer/session';
import { tinyModel } from '../surgery/fixtures';

function fakeBatch(step: number, disposed: number[]): Batch {
  const images = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', step) as tf.Tensor4D;
  const labels = tf.tensor1d([0, 1], 'int32');
  return {
    images,
    labels,
    indices: [0, 1],
    epoch: 0,
    step,
    stepInEpoch: step,
    dispose() {
      disposed.push(step);
      tf.dispose([images, labels]);
    },
    ack() {},
  };
}

describe('trainer stage (marble)', () => {
  let job: TrainJob;
  let dispose: () => void;
  beforeEach(() => {
    const base = tinyModel(2);
    const surgery = applySurgery(base, { method: 'linear' }, { classes: 2, seed: 0 });
    base.dispose();
    job = {
      model: surgery.model,
      trainable: surgery.trainable,
      firstTrainableBlock: surgery.firstTrainableBlock,
      numClasses: 2,
      settings: { optimizer: 'sgd', momentum: 0.9, lr: 0.1, warmupSteps: 0, steps: 3, schedule: 'constant', batchSize: 2, seed: 0 },
    };
    dispose = () => surgery.model.dispose();
  });
  afterEach(() => dispose());

  it('steps once per batch, runs the follow-up before the next step, and stops reading after the last step', () => {
    const disposed: number[] = [];
    const scheduler = new TestScheduler((actual, expected) => {
      expect(actual).to.deep.equal(expected);
    });
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const batches = cold('a-b---c-d-e|', { a: fakeBatch(0, disposed), b: fakeBatch(1, disposed), c: fakeBatch(2, disposed), d: fakeBatch(3, disposed), e: fakeBatch(4, disposed) });
      const trainer = new DefaultTrainerStage();
      const output = trainer
        .train(job, batches, { afterStep: (step) => (step.step === 2 ? of('evaluated') : EMPTY) })
        .pipe(map((event) => (typeof event === 'string' ? event : `step${event.step}`)));
      expectObservable(output).toBe('a-(bc)(d|)', { a: 'step1', b: 'step2', c: 'evaluated', d: 'step3' });
      expectSubscriptions(batches.subscriptions).toBe('^-----!');
    });
    expect(disposed).to.deep.equal([0, 1, 2]);
    // Batches 3 and 4 were never consumed: the cold stream was unsubscribed before emitting them.
  });

  it('resumes: a session restored at step 2 of 3 takes one batch', () => {
    const disposed: number[] = [];
    const scheduler = new TestScheduler((actual, expected) => {
      expect(actual).to.deep.equal(expected);
    });
    scheduler.run(({ cold, expectObservable }) => {
      const batches = cold('a-b|', { a: fakeBatch(2, disposed), b: fakeBatch(3, disposed) });
      const output = new DefaultTrainerStage()
        .train<never>(job, batches, { onStart: (session) => (session.completedSteps = 2) })
        .pipe(map((event) => event.step));
      expectObservable(output).toBe('(a|)', { a: 3 });
    });
  });
});
