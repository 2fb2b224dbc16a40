import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { MethodSpec, applySurgery } from '../../stages/surgery';
import { TrainSettings, TrainingSession } from '../../stages/trainer/session';
import { tensorLeak } from '../helpers/tensors';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { tinyConfig, tinyImages } from '../surgery/fixtures';

const CLASSES = 5;

/** Largest |a - b| relative to the tensor's scale (its largest |b|): float rounding of a sum taken in another order. */
function worstRelative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / scale;
}

/**
 * The values to compare. Attention's softmax over keys ignores the key bias, so its true gradient
 * is 0 and what the tape returns is rounding noise; AdamW divides that noise by its own size and
 * moves the key bias by about +-lr either way the batch is summed. Under AdamW the key third of
 * qkv.bias is left out; everything else is compared.
 */
function comparable(name: string, values: ArrayLike<number>, settings: TrainSettings): number[] {
  const all = Array.from(values);
  if (settings.optimizer !== 'adamw' || !name.endsWith('attn.qkv.bias')) return all;
  const width = all.length / 3;
  return [...all.slice(0, width), ...all.slice(2 * width)];
}

const OPTIMIZERS: [string, TrainSettings][] = [
  ['SGD momentum', { optimizer: 'sgd', momentum: 0.9, schedule: 'constant', lr: 0.05, warmupSteps: 0, steps: 10, batchSize: 7, seed: 0 }],
  ['AdamW', { optimizer: 'adamw', weightDecay: 0.01, schedule: 'constant', lr: 0.001, warmupSteps: 0, steps: 10, batchSize: 7, seed: 0 }],
];
const METHODS: [string, MethodSpec][] = [
  ['full', { method: 'full' }],
  ['LoRA r2', { method: 'lora', rank: 2 }],
  ['block p2', { method: 'block', p: 2 }],
];

/** Two sessions on the same starting weights: without accumulation, and with micro-batches of `microBatch`. */
function sessions(spec: MethodSpec, settings: TrainSettings, microBatch: number, cacheFeatures = false) {
  // One seeded base for both (tinyModel's own initialisation is not seeded): the same case every run.
  const base = seededTinyModel();
  try {
    return [session(base, spec, settings, undefined, cacheFeatures), session(base, spec, settings, microBatch, cacheFeatures)];
  } finally {
    base.dispose();
  }
}

/** tinyModel's shape and perturbation, from a seeded initialisation. */
function seededTinyModel(): VisionTransformer {
  const model = VisionTransformer.init(tinyConfig(4), { seed: 17 });
  tf.tidy(() => model.namedParameters().forEach(([, variable], i) => variable.assign(tf.add(variable, tf.randomNormal(variable.shape, 0, 0.05, 'float32', 7000 + i)))));
  return model;
}

function session(base: VisionTransformer, spec: MethodSpec, settings: TrainSettings, microBatch: number | undefined, cacheFeatures: boolean) {
  const surgery = applySurgery(base, spec, { classes: CLASSES, seed: 5 });
  // LoRA's B starts at zero; move every trainable variable off its initial value so all get gradients (seed 0 would mean unseeded).
  tf.tidy(() => surgery.trainable.forEach((variable, i) => variable.assign(tf.add(variable, tf.randomNormal(variable.shape, 0, 0.02, 'float32', i + 1)))));
  const training = new TrainingSession({ model: surgery.model, trainable: surgery.trainable, firstTrainableBlock: surgery.firstTrainableBlock, numClasses: CLASSES, settings, microBatch, cacheFeatures });
  return { training, surgery, dispose: () => (training.dispose(), surgery.model.dispose()) };
}

describe('trainer: gradient accumulation (train.microBatch)', () => {
  // 7 examples in micro-batches of 3: slices of 3, 3 and 1, so unequal shares are weighted correctly.
  let images: tf.Tensor4D;
  let labels: tf.Tensor1D;
  before(() => {
    images = tinyImages(7);
    labels = tf.tensor1d([0, 3, 4, 1, 2, 2, 0], 'int32');
  });
  after(() => tf.dispose([images, labels]));

  for (const [optimizerLabel, settings] of OPTIMIZERS) {
    for (const [methodLabel, spec] of METHODS) {
      it(`${methodLabel}, ${optimizerLabel}: three steps in micro-batches of 3 give the whole batch's losses and weights (1e-5 relative)`, () => {
        const [whole, split] = sessions(spec, settings, 3);
        try {
          for (let step = 0; step < 3; step++) {
            const a = whole.training.step(images, labels);
            const b = split.training.step(images, labels);
            expect(Math.abs(b.loss - a.loss) / a.loss, `loss at step ${step + 1}`).to.be.below(1e-5);
            expect(b.step).to.equal(a.step);
          }
          whole.surgery.trainable.forEach((variable, i) => {
            const name = whole.surgery.trainableNames[i];
            const expected = comparable(name, variable.dataSync(), settings);
            const actual = comparable(name, split.surgery.trainable[i].dataSync(), settings);
            expect(worstRelative(actual, expected), name).to.be.below(1e-5);
          });
          expect(tensorLeak(() => split.training.step(images, labels)), 'tensors left by an accumulated step').to.equal(0);
        } finally {
          whole.dispose();
          split.dispose();
        }
      });
    }
  }

  it('a micro-batch of the whole batch or more is the plain step, bit for bit', () => {
    const settings = OPTIMIZERS[0][1];
    const [plain, same] = sessions({ method: 'lora', rank: 2 }, settings, 7);
    try {
      expect(same.training.step(images, labels).loss).to.equal(plain.training.step(images, labels).loss);
      plain.surgery.trainable.forEach((variable, i) => expect(Array.from(same.surgery.trainable[i].dataSync())).to.deep.equal(Array.from(variable.dataSync())));
    } finally {
      plain.dispose();
      same.dispose();
    }
  });

  it('with the feature cache, micro-batches give the whole batch and fill the cache with every example', () => {
    const settings = OPTIMIZERS[0][1];
    const [whole, split] = sessions({ method: 'linear' }, settings, 2, true);
    const ids = [10, 11, 12, 13, 14, 15, 16];
    try {
      for (let step = 0; step < 2; step++) {
        const a = whole.training.step(images, labels, ids);
        const b = split.training.step(images, labels, ids);
        expect(Math.abs(b.loss - a.loss) / a.loss).to.be.below(1e-5);
      }
      expect(split.training.featureCache!.size).to.equal(7);
      whole.surgery.trainable.forEach((variable, i) => expect(worstRelative(split.surgery.trainable[i].dataSync(), variable.dataSync())).to.be.below(1e-5));
    } finally {
      whole.dispose();
      split.dispose();
    }
  });
});
