// One ViT-B/16 training configuration of the paper's run, measured outside the pipeline: a random
// ViT-B/16 at 224 px (timm's shape, 100 classes), the memory plan's micro-batch for `--batch`
// (train.microBatch "auto" unless --micro is given) on the backend in use, then --steps full steps
// (default 2; SGD momentum; the first also warms the kernels). Prints one JSON line: the plan, the
// estimate and the seconds of each step. Run it under /usr/bin/time -v for the peak RSS:
//
//   /usr/bin/time -v node dist/bench/paperStep.js --batch 8 [--micro auto|N] [--method full|lora] [--steps 2]

import 'reflect-metadata';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../di/backend';
import { presetConfig } from '../models/vit/config';
import { VisionTransformer } from '../models/vit/visionTransformer';
import { memoryLimit, modelShape, planMicroBatch } from '../pipelines/memoryPlan';
import { applySurgery } from '../stages/surgery/applySurgery';
import { embeddingsTrain } from '../stages/trainer/forward';
import { TrainingSession } from '../stages/trainer/session';

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

async function main(): Promise<void> {
  const batch = Number(argument('batch', '1'));
  const microArgument = argument('micro', 'auto');
  const micro = microArgument === 'auto' ? 'auto' : Number(microArgument);
  const method = argument('method', 'full');
  const steps = Number(argument('steps', '2'));
  const backend = await initBackend('auto');
  const base = VisionTransformer.init(presetConfig('vit-b16', { numClasses: 0 }), { seed: 1 });
  const surgery = applySurgery(base, method === 'lora' ? { method: 'lora', rank: 8 } : { method: 'full' }, { classes: 100, seed: 0 });
  base.dispose();
  const depth = surgery.model.blocks.length;
  const settings = { optimizer: 'sgd', momentum: 0.9, schedule: 'constant', lr: 0.005, warmupSteps: 0, steps, batchSize: batch, seed: 0 } as const;
  const plan = planMicroBatch(
    {
      model: modelShape(surgery.model.config, depth),
      tapeBlocks: embeddingsTrain(surgery.model) ? depth : depth - surgery.firstTrainableBlock,
      trainableParams: surgery.trainableCount,
      optimizerSlots: 1,
      residentBytes: tf.memory().numBytes,
    },
    batch,
    micro,
    memoryLimit(),
    method,
  );
  const session = new TrainingSession({ model: surgery.model, trainable: surgery.trainable, firstTrainableBlock: surgery.firstTrainableBlock, numClasses: 100, settings, microBatch: plan.microBatch });
  const images = tf.randomNormal([batch, 224, 224, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 100), 'int32');
  const seconds: number[] = [];
  for (let step = 0; step < steps; step++) {
    const started = Date.now();
    session.step(images, labels);
    seconds.push((Date.now() - started) / 1000);
  }
  process.stdout.write(`${JSON.stringify({ backend: backend.description, method, batch, microBatch: plan.microBatch, estimateBytes: plan.stepBytes, summary: plan.summary, seconds })}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`paperStep: ${error.message.split('\n')[0]}\n`);
  process.exitCode = 1;
});
