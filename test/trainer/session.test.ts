import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { MethodSpec, applySurgery } from '../../stages/surgery';
import { crossEntropy, softTargets } from '../../stages/trainer/loss';
import { TrainingSession } from '../../stages/trainer/session';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';
import { tinyImages, tinyModel } from '../surgery/fixtures';

const CLASSES = 5;
const LR = 0.1;

const METHODS: [string, MethodSpec][] = [
  ['full', { method: 'full' }],
  ['linear', { method: 'linear' }],
  ['lora-r2', { method: 'lora', rank: 2 }],
  ['block-p2', { method: 'block', p: 2 }],
  ['top1', { method: 'topk', k: 1 }],
];

describe('trainer: a training session step', () => {
  for (const [label, spec] of METHODS) {
    it(`${label}: one plain-SGD step moves each trainable variable by -lr x its gradient through the whole network, and nothing else`, () => {
      const base = tinyModel(4);
      const surgery = applySurgery(base, spec, { classes: CLASSES, seed: 5 });
      base.dispose();
      // LoRA's B starts at zero, which leaves A without gradient on the first step: move B off zero.
      tf.tidy(() => surgery.trainable.forEach((variable, i) => variable.assign(tf.add(variable, tf.randomNormal(variable.shape, 0, 0.02, 'float32', i)))));
      const images = tinyImages(3);
      const labels = tf.tensor1d([0, 3, 4], 'int32');
      const session = new TrainingSession({
        model: surgery.model,
        trainable: surgery.trainable,
        firstTrainableBlock: surgery.firstTrainableBlock,
        numClasses: CLASSES,
        settings: { optimizer: 'sgd', momentum: 0, schedule: 'constant', lr: LR, warmupSteps: 0, steps: 10, batchSize: 3, seed: 0 },
      });
      try {
        // The reference: the plain forward pass, every part inside the tape.
        const targets = softTargets(labels, CLASSES);
        const reference = tf.variableGrads(() => crossEntropy(surgery.model.forward(images), targets), surgery.trainable);
        const frozenBefore = surgery.model.namedParameters().filter(([, v]) => !v.trainable).map(([name, v]) => [name, v.dataSync().slice()] as const);
        const trainableBefore = surgery.trainable.map((variable) => variable.dataSync().slice());

        const metrics = session.step(images, labels);
        expect(metrics.loss).to.be.closeTo(reference.value.dataSync()[0], 1e-5);
        surgery.trainable.forEach((variable, i) => {
          const expected = tf.tidy(() => tf.sub(tf.tensor(trainableBefore[i], variable.shape), tf.mul(reference.grads[variable.name], LR)));
          expect(maxAbsDifference(variable, expected), `${surgery.trainableNames[i]} after one step`).to.be.below(1e-5);
          expected.dispose();
        });
        const frozenAfter = new Map(surgery.model.namedParameters().map(([name, v]) => [name, v]));
        for (const [name, values] of frozenBefore) expect(maxAbsDifference(frozenAfter.get(name)!, values), `${name} is frozen`).to.equal(0);
        tf.dispose([targets, reference.value, ...Object.values(reference.grads)]);

        expect(tensorLeak(() => session.step(images, labels)), 'tensors left by a step').to.equal(0);
      } finally {
        session.dispose();
        surgery.model.dispose();
        tf.dispose([images, labels]);
      }
    });
  }

  describe('with a feature cache (linear probing on inputs that are not augmented)', () => {
    const settings = { optimizer: 'sgd', momentum: 0.9, schedule: 'constant', lr: LR, warmupSteps: 0, steps: 10, batchSize: 3, seed: 0 } as const;
    const linearSession = (base: ReturnType<typeof tinyModel>, cacheFeatures: boolean) => {
      const surgery = applySurgery(base, { method: 'linear' }, { classes: CLASSES, seed: 5 });
      return new TrainingSession({ model: surgery.model, trainable: surgery.trainable, firstTrainableBlock: surgery.firstTrainableBlock, numClasses: CLASSES, settings, cacheFeatures });
    };

    it('trains the head exactly as without the cache, and later steps read the stored features', () => {
      const base = tinyModel(4);
      const cached = linearSession(base, true);
      const plain = linearSession(base, false);
      base.dispose();
      const images = tinyImages(3);
      const other = tinyImages(3, 99);
      const labels = tf.tensor1d([0, 3, 4], 'int32');
      try {
        for (let step = 0; step < 3; step++) {
          const a = cached.step(images, labels, [10, 11, 12]);
          const b = plain.step(images, labels);
          expect(a.loss, `loss at step ${step}`).to.be.closeTo(b.loss, 1e-5);
        }
        expect(cached.featureCache!.size).to.equal(3);
        expect(maxAbsDifference(cached.job.model.head!.weight, plain.job.model.head!.weight)).to.be.below(1e-5);
        // Known ids: the stored features are used, whatever pixels come with them.
        const fromCache = cached.step(other, labels, [10, 11, 12]);
        const fromImages = plain.step(images, labels);
        expect(fromCache.loss).to.be.closeTo(fromImages.loss, 1e-5);
        expect(tensorLeak(() => cached.step(images, labels, [10, 11, 12]))).to.equal(0);
        expect(() => cached.step(images, labels)).to.throw(/give each step the ids of its examples/);
        expect(() => cached.step(images, labels, [1, 2])).to.throw(/2 example ids for a batch of 3 images/);
      } finally {
        for (const session of [cached, plain]) {
          session.dispose();
          session.job.model.dispose();
        }
        tf.dispose([images, other, labels]);
      }
    });

    it('is refused when anything before the head trains', () => {
      const base = tinyModel(4);
      const surgery = applySurgery(base, { method: 'lora', rank: 2 }, { classes: CLASSES, seed: 5 });
      base.dispose();
      const job = { model: surgery.model, trainable: surgery.trainable, firstTrainableBlock: 0, numClasses: CLASSES, settings, cacheFeatures: true };
      expect(() => new TrainingSession(job)).to.throw(/feature cache: only the head may train, but block 0, block 1, block 2, \.\.\. train as well/);
      surgery.model.dispose();
    });
  });
});
