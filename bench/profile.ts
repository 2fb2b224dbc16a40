// Where a training step's time goes, kernel by kernel: one step of the bench's reference shape
// under tf.profile, after warm-up steps, summed per kernel name (and per name and output shape
// with --shapes). A tool for deciding what to optimise next; the bench measures the outcome.
// Nested kernels (inside a custom gradient) are counted inside their parent too, so the total
// exceeds the step time when custom gradients run.
//
// With --forward it profiles the evaluation's forward pass instead (embedCls: the class token after
// the final norm) at --batch images (default 256), as the k-NN evaluation runs it.
//
//   node dist/bench/profile.js [--method full|lora-r8|block-p2|linear] [--shape reference|default] [--forward [--batch N]] [--threads N] [--shapes] [--top K]

import * as tf from '@tensorflow/tfjs';
import { backendFromArgs, flagValue } from './args';
import { VisionTransformer } from '../models/vit/visionTransformer';
import { applySurgery } from '../stages/surgery/applySurgery';
import { parseMethodLabel } from '../stages/surgery/methodSpec';
import { TrainingSession } from '../stages/trainer/session';
import { REFERENCE_CONFIG } from './cases';

async function main(args: string[]): Promise<void> {
  const value = (flag: string) => flagValue(args, flag);
  const info = await backendFromArgs(args);
  const method = value('--method') ?? 'full';
  const byShape = args.includes('--shapes');
  const top = Number(value('--top') ?? 40);
  // The default's shape: ViT width 64, depth 6, 2 heads, patch 7, 28x28 images, 5 classes.
  const shape = value('--shape') ?? 'reference';
  if (shape !== 'reference' && shape !== 'default') throw new Error(`--shape: expected reference or default, got '${shape}'`);
  const config = shape === 'default' ? { imageSize: 28, patchSize: 7, inChannels: 3, width: 64, depth: 6, heads: 2, mlpHidden: 256, numClasses: 0, layerNormEps: 1e-6 } : REFERENCE_CONFIG;
  const classes = shape === 'default' ? 5 : 10;
  const base = VisionTransformer.init(config);
  const surgery = applySurgery(base, parseMethodLabel(method), { classes, seed: 0 });
  base.dispose();
  const session = new TrainingSession({
    model: surgery.model,
    trainable: surgery.trainable,
    firstTrainableBlock: surgery.firstTrainableBlock,
    numClasses: classes,
    settings: { optimizer: 'sgd', momentum: 0.9, schedule: 'constant', lr: 0.005, warmupSteps: 0, steps: 100, batchSize: 32, seed: 0 },
  });
  const forward = args.includes('--forward');
  const batch = forward ? Number(value('--batch') ?? 256) : 32;
  const images = tf.randomNormal([batch, config.imageSize, config.imageSize, 3]) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % classes), 'int32');
  const run = forward ? () => tf.dispose(surgery.model.embedCls(images)) : () => void session.step(images, labels);
  for (let i = 0; i < 2; i++) run();
  const started = Date.now();
  const profile = await tf.profile(run);
  const wall = Date.now() - started;
  const totals = new Map<string, { ms: number; count: number }>();
  for (const kernel of profile.kernels) {
    const key = byShape ? `${kernel.name} -> ${JSON.stringify(kernel.outputShapes)} <- ${JSON.stringify(kernel.inputShapes)}` : kernel.name;
    const entry = totals.get(key) ?? { ms: 0, count: 0 };
    entry.ms += kernel.kernelTimeMs as number;
    entry.count++;
    totals.set(key, entry);
  }
  const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const sum = rows.reduce((s, [, e]) => s + e.ms, 0);
  process.stdout.write(`${method}, ${shape} shape, ${forward ? `class-token forward at batch ${batch}` : 'training step at batch 32'}, on ${info.description}: ${profile.kernels.length} kernel calls; profiled step ${wall} ms wall, kernels sum ${sum.toFixed(0)} ms\n`);
  for (const [key, { ms, count }] of rows.slice(0, top)) process.stdout.write(`${ms.toFixed(1).padStart(9)} ms ${String(count).padStart(5)}x  ${key}\n`);
  tf.dispose([images, labels]);
  session.dispose();
  surgery.model.dispose();
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`profile: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
