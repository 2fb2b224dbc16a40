// What the benchmark measures. Each case builds its model and inputs, then times one unit of work
// per run: a training step (forward, backward, SGD-with-momentum update, loss read back), a
// forward pass whose output is read back, or one batch of the dataset transform.
//
// The reference training shape: ViT width 192, depth 12, 3 heads, MLP 768, 32x32 images with
// patch 4 (64 patches + class token = 65 tokens), batch 32, 10 classes, SGD momentum 0.9.

import * as tf from '@tensorflow/tfjs';
import { VitConfig, presetConfig } from '../models/vit/config';
import { loadVit } from '../models/checkpoint/vitCheckpoint';
import { DEFAULT_MODEL } from '../pipelines/builtin';
import { jobCase } from './job';
import { VisionTransformer } from '../models/vit/visionTransformer';
import { applySurgery } from '../stages/surgery/applySurgery';
import { mergedCopy } from '../stages/surgery/lora';
import { MethodSpec } from '../stages/surgery/methodSpec';
import { TrainingSession } from '../stages/trainer/session';
import { affine } from '../models/ops/affine';
import { columnSums, matMulExplicit, transposedProduct } from '../models/ops/explicitTransposeMatMul';
import { BenchCase, Timing, timeRuns } from './measure';

export type { BenchCase, CaseGroup } from './measure';
import { measureDatasetTransform } from './dataset';
import { measureKnn } from './knn';

export const REFERENCE_CONFIG = presetConfig('vit-ti16', { imageSize: 32, patchSize: 4, numClasses: 10 });
const REFERENCE_CLASSES = 10;
const TRAIN_BATCH = 32;
const EVAL_BATCH = 128;
const KNN_QUERIES = 10_000;

function randomImages(batch: number, side: number): tf.Tensor4D {
  return tf.randomNormal([batch, side, side, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
}

function randomLabels(batch: number, classes: number): tf.Tensor1D {
  return tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 7) % classes), 'int32');
}

/** A model shape to bench: the reference one, or the built-in default's. */
interface Shape {
  readonly label: string;
  readonly config: VitConfig;
  readonly classes: number;
  readonly batch: number;
}

const REFERENCE: Shape = { label: 'reference shape', config: REFERENCE_CONFIG, classes: REFERENCE_CLASSES, batch: TRAIN_BATCH };

/** The built-in default's model (ViT width 64, depth 6, 2 heads, patch 7, 28x28), 5 new classes, its batch of 32. */
function defaultShape(): Shape {
  const { model } = loadVit(DEFAULT_MODEL, { imageSize: 28 });
  const config = { ...model.config, numClasses: 0 };
  model.dispose();
  return { label: "the default's shape", config, classes: 5, batch: 32 };
}

/** Surgery on a freshly initialised model of the shape (random weights: speed does not depend on them). */
function surgeryOn(shape: Shape, spec: MethodSpec) {
  const base = VisionTransformer.init(shape.config);
  try {
    return applySurgery(base, spec, { classes: shape.classes, seed: 0 });
  } finally {
    base.dispose();
  }
}

/** With cacheFeatures: linear probing on inputs that are not augmented, in the steady state (every example's features cached). */
function trainCase(name: string, spec: MethodSpec, options: { cacheFeatures?: boolean; shape?: () => Shape } = {}): BenchCase {
  const { cacheFeatures = false } = options;
  return {
    group: 'train',
    name,
    batch: TRAIN_BATCH,
    description: cacheFeatures ? `training step, ${spec.method}, frozen features cached (inputs not augmented; after the first epoch)` : `training step, ${name}`,
    async measure(warmup, runs) {
      const shape = options.shape?.() ?? REFERENCE;
      const surgery = surgeryOn(shape, spec);
      const session = new TrainingSession({
        model: surgery.model,
        trainable: surgery.trainable,
        firstTrainableBlock: surgery.firstTrainableBlock,
        numClasses: shape.classes,
        settings: { optimizer: 'sgd', momentum: 0.9, schedule: 'constant', lr: 0.005, warmupSteps: 0, steps: 10_000, batchSize: shape.batch, seed: 0 },
        cacheFeatures,
      });
      const images = randomImages(shape.batch, shape.config.imageSize);
      const labels = randomLabels(shape.batch, shape.classes);
      const ids = cacheFeatures ? Array.from({ length: shape.batch }, (_, i) => i) : undefined;
      if (ids) session.step(images, labels, ids); // the first epoch fills the cache
      try {
        return await timeRuns(() => void session.step(images, labels, ids), warmup, runs);
      } finally {
        tf.dispose([images, labels]);
        session.dispose();
        surgery.model.dispose();
      }
    },
  };
}

/** Forward passes of `model` (disposed afterwards) on `batch` random images, reading the output back. */
async function timeForward(model: VisionTransformer, batch: number, side: number, warmup: number, runs: number): Promise<Timing> {
  const images = randomImages(batch, side);
  try {
    const forward = () => {
      const output = model.head ? model.forward(images) : model.embedCls(images);
      output.dataSync();
      output.dispose();
    };
    return await timeRuns(forward, warmup, runs);
  } finally {
    images.dispose();
    model.dispose();
  }
}

function evalCase(name: string, batch: number, description: string, build: () => { model: VisionTransformer; side: number }): BenchCase {
  return {
    group: 'eval',
    name,
    batch,
    description,
    async measure(warmup, runs) {
      const { model, side } = build();
      return timeForward(model, batch, side, warmup, runs);
    },
  };
}

/**
 * One transformer block's dense-layer products of a training step, alone: for qkv, proj, fc1 and
 * fc2 of the shape's width, the forward product with its bias, the input's gradient dY W^T, the
 * weight's X^T dY and the bias's column sums, on batch x tokens rows, through the ops the trainer
 * uses. These products are most of a step's arithmetic, so their speed beside PyTorch's (the same
 * products in scripts/bench_pytorch.py: addmm, mm, sum) bounds what the whole step can reach.
 */
function denseCase(name: string, shape: () => Shape): BenchCase {
  return {
    group: 'kernel',
    name,
    batch: TRAIN_BATCH,
    description: 'one block\'s dense products of a training step (forward with bias, dX, dW, db for qkv, proj, fc1, fc2); img/s: images of the batch',
    async measure(warmup, runs) {
      const { config, batch } = shape();
      const rows = batch * (1 + (config.imageSize / config.patchSize) ** 2);
      const layers = [
        [config.width, 3 * config.width],
        [config.width, config.width],
        [config.width, config.mlpHidden],
        [config.mlpHidden, config.width],
      ].map(([inputs, outputs], i) => ({
        x: tf.randomNormal([rows, inputs], 0, 1, 'float32', 10 + i) as tf.Tensor2D,
        dy: tf.randomNormal([rows, outputs], 0, 1, 'float32', 20 + i) as tf.Tensor2D,
        weight: tf.randomNormal([inputs, outputs], 0, 0.02, 'float32', 30 + i) as tf.Tensor2D,
        bias: tf.zeros([outputs]) as tf.Tensor1D,
      }));
      try {
        return await timeRuns(() => {
          const outputs = layers.flatMap(({ x, dy, weight, bias }) => [affine(x, weight, bias), matMulExplicit(dy, weight, false, true), transposedProduct(x, dy), columnSums(dy)]);
          outputs[outputs.length - 1].dataSync();
          tf.dispose(outputs);
        }, warmup, runs);
      } finally {
        tf.dispose(layers.flatMap(({ x, dy, weight, bias }) => [x, dy, weight, bias]));
      }
    },
  };
}

export const CASES: readonly BenchCase[] = [
  trainCase('full', { method: 'full' }),
  trainCase('lora-r8', { method: 'lora', rank: 8 }),
  trainCase('block-p2', { method: 'block', p: 2 }),
  trainCase('linear', { method: 'linear' }),
  trainCase('linear-cached', { method: 'linear' }, { cacheFeatures: true }),
  trainCase('default-full', { method: 'full' }, { shape: defaultShape }),
  trainCase('default-lora-r8', { method: 'lora', rank: 8 }, { shape: defaultShape }),
  evalCase('reference-b128', EVAL_BATCH, 'forward, reference shape (logits)', () => ({ model: VisionTransformer.init(REFERENCE_CONFIG), side: REFERENCE_CONFIG.imageSize })),
  evalCase('lora-r8-unmerged-b128', EVAL_BATCH, 'forward, reference shape with LoRA r=8 adapters applied on the fly', () => ({
    model: surgeryOn(REFERENCE, { method: 'lora', rank: 8 }).model,
    side: REFERENCE_CONFIG.imageSize,
  })),
  evalCase('lora-r8-merged-b128', EVAL_BATCH, 'forward, reference shape with LoRA r=8 merged into the weights', () => {
    const { model } = surgeryOn(REFERENCE, { method: 'lora', rank: 8 });
    try {
      return { model: mergedCopy(model), side: REFERENCE_CONFIG.imageSize };
    } finally {
      model.dispose();
    }
  }),
  evalCase('default-b256', 256, "forward, the default's shape (class-token features)", () => {
    const { config } = defaultShape();
    return { model: VisionTransformer.init(config), side: config.imageSize };
  }),
  evalCase('vit-b16-224-b8', 8, 'forward, ViT-B/16 at 224x224, random weights (class-token features)', () => ({ model: VisionTransformer.init(presetConfig('vit-b16')), side: 224 })),
  {
    group: 'dataset',
    name: 'cifar-train-224',
    batch: EVAL_BATCH,
    description: 'dataset stage, CIFAR 32 -> 224 paper-train transform (RandomResizedCrop + flip + normalise), batches of 128',
    measure: (warmup, runs) => measureDatasetTransform('paper-train', { batchSize: EVAL_BATCH, images: EVAL_BATCH, warmup, runs }),
  },

  denseCase('dense-default', defaultShape),
  denseCase('dense-reference', () => REFERENCE),

  jobCase('default-linear', 'linear'),
  jobCase('default-block-p1', 'block-p1'),
  jobCase('default-full', 'full'),
  ...[50_000, 100_000, 200_000].map(
    (bankSize): BenchCase => ({
      group: 'knn',
      name: `bank-${bankSize / 1000}k`,
      batch: KNN_QUERIES,
      description: `weighted k-NN (k up to 200), ${bankSize.toLocaleString('en-US')} x 768 bank in blocks, ${KNN_QUERIES.toLocaleString('en-US')} queries (img/s: queries/s)`,
      measure: (warmup, runs) => measureKnn(bankSize, KNN_QUERIES, warmup, runs),
    }),
  ),
];

export function caseId(benchCase: Pick<BenchCase, 'group' | 'name'>): string {
  return `${benchCase.group}.${benchCase.name}`;
}
