// The memory estimate against measurement: tf.profile's peak bytes of a real step (and of an
// evaluation forward) on three shapes that the coefficients were not fitted on.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { OWN_KERNELS, provided } from '../../models/ops/backendKernels';
import { VitConfig } from '../../models/vit/config';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { MethodSpec, applySurgery } from '../../stages/surgery';
import { embeddingsTrain } from '../../stages/trainer/forward';
import { evalBatchBytes, largestFitting, trainStepBytes } from '../../stages/trainer/memoryEstimate';
import { TrainingSession } from '../../stages/trainer/session';

interface Case {
  readonly label: string;
  readonly config: VitConfig;
  readonly spec: MethodSpec;
  readonly batch: number;
  readonly microBatch: number;
}

const vit = (imageSize: number, patchSize: number, width: number, depth: number, heads: number, mlpHidden: number): VitConfig => ({
  imageSize,
  patchSize,
  inChannels: 3,
  width,
  depth,
  heads,
  mlpHidden,
  numClasses: 0,
  layerNormEps: 1e-6,
});

const CASES: Case[] = [
  { label: 'full, 26 tokens x 80 wide, batch 5', config: vit(40, 8, 80, 3, 4, 320), spec: { method: 'full' }, batch: 5, microBatch: 5 },
  { label: 'LoRA r2, 50 tokens x 48 wide, batch 6 as micro-batches of 3', config: vit(56, 8, 48, 5, 2, 192), spec: { method: 'lora', rank: 2 }, batch: 6, microBatch: 3 },
  { label: 'block p2, 65 tokens x 64 wide, batch 4', config: vit(32, 4, 64, 4, 4, 128), spec: { method: 'block', p: 2 }, batch: 4, microBatch: 4 },
];

/** The estimate may be above the measurement by this much (it is used as a limit) and below it by TOO_LOW. */
const TOO_HIGH = 1.25;
const TOO_LOW = 0.85;

describe('trainer: the memory estimate against tf.profile', () => {
  // The route the estimate models: vitpeft's own kernels where the backend has them (wasm).
  const ownKernels = () => OWN_KERNELS.every(provided);
  for (const c of CASES) {
    it(`${c.label}: a step's peak within [${TOO_LOW}, ${TOO_HIGH}] x the measured`, async () => {
      const base = VisionTransformer.init(c.config, { seed: 3 });
      const surgery = applySurgery(base, c.spec, { classes: 10, seed: 1 });
      base.dispose();
      const settings = { optimizer: 'sgd', momentum: 0.9, schedule: 'constant', lr: 0.01, warmupSteps: 0, steps: 10, batchSize: c.batch, seed: 0 } as const;
      const session = new TrainingSession({ model: surgery.model, trainable: surgery.trainable, firstTrainableBlock: surgery.firstTrainableBlock, numClasses: 10, settings, microBatch: c.microBatch });
      const images = tf.randomNormal([c.batch, c.config.imageSize, c.config.imageSize, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
      const labels = tf.tensor1d(Array.from({ length: c.batch }, (_, i) => i % 10), 'int32');
      try {
        session.step(images, labels);
        // Resident before the step: weights, optimizer state (the estimate adds that itself), the batch.
        const optimizerBytes = surgery.trainableCount * 4;
        const imageBytes = images.size * 4;
        const resident = tf.memory().numBytes - optimizerBytes - imageBytes;
        const profile = await tf.profile(() => {
          session.step(images, labels);
        });
        const depth = surgery.model.blocks.length;
        const estimate = trainStepBytes(
          {
            model: { ...c.config, depth, ownKernels: ownKernels() },
            tapeBlocks: embeddingsTrain(surgery.model) ? depth : depth - surgery.firstTrainableBlock,
            trainableParams: surgery.trainableCount,
            optimizerSlots: 1,
            residentBytes: resident,
          },
          c.batch,
          c.microBatch,
        );
        const ratio = (estimate - resident) / (profile.peakBytes - resident);
        if (process.env.VITPEFT_SHOW_ESTIMATES) console.log(`      ${c.label}: estimate/measured ${ratio.toFixed(3)}`);
        expect(ratio, `estimate ${estimate} vs measured peak ${profile.peakBytes} (resident ${resident})`).to.be.within(TOO_LOW, TOO_HIGH);
      } finally {
        session.dispose();
        surgery.model.dispose();
        tf.dispose([images, labels]);
      }
    });
  }

  it('an evaluation forward: within the same bounds on two shapes', async () => {
    for (const config of [vit(48, 8, 96, 2, 3, 384), vit(24, 4, 48, 2, 6, 96)]) {
      const model = VisionTransformer.init(config, { seed: 3 });
      const images = tf.randomNormal([6, config.imageSize, config.imageSize, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
      try {
        tf.dispose(model.embedCls(images, {}));
        const resident = tf.memory().numBytes - images.size * 4;
        const profile = await tf.profile(() => {
          tf.dispose(model.embedCls(images, {}));
        });
        const ratio = evalBatchBytes({ ...config, ownKernels: ownKernels() }, 6) / (profile.peakBytes - resident);
        if (process.env.VITPEFT_SHOW_ESTIMATES) console.log(`      evaluation ${config.imageSize}px width ${config.width}: estimate/measured ${ratio.toFixed(3)}`);
        expect(ratio, `${config.imageSize}px, width ${config.width}`).to.be.within(TOO_LOW, TOO_HIGH);
      } finally {
        model.dispose();
        images.dispose();
      }
    }
  });

  it('largestFitting finds the boundary, and 0 when nothing fits', () => {
    expect(largestFitting(128, (n) => n <= 37)).to.equal(37);
    expect(largestFitting(128, (n) => n <= 500)).to.equal(128);
    expect(largestFitting(128, () => false)).to.equal(0);
  });
});
