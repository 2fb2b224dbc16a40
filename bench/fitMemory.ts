// Refits the per-activation coefficients of stages/trainer/memoryEstimate.ts for the running
// backend's route: measures tf.profile's peak bytes of real training steps and evaluation forwards
// of tiny random ViTs (one thread, as the tests), subtracts what the estimate computes exactly
// (weights, optimizer state, images, the forward outside the tape), and prints the least-squares
// coefficients per (example x token x width) and per (example x token x MLP width) of the tape,
// and of an evaluation forward (with the attention matrices' per head x token pair), separately
// for sequences the fused attention kernels take (<= FUSED_ATTENTION_MAX_TOKENS) and longer ones.
//
//   node dist/bench/fitMemory.js

import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../di/backend';
import { FUSED_ATTENTION_MAX_TOKENS } from '../models/ops/kernelPolicy';
import { VitConfig } from '../models/vit/config';
import { VisionTransformer } from '../models/vit/visionTransformer';
import { MethodSpec, applySurgery } from '../stages/surgery';
import { embeddingsTrain } from '../stages/trainer/forward';
import { tokens, trainStepBytes } from '../stages/trainer/memoryEstimate';
import { TrainingSession } from '../stages/trainer/session';

const vit = (imageSize: number, patchSize: number, width: number, depth: number, heads: number, mlpHidden: number): VitConfig => ({ imageSize, patchSize, inChannels: 3, width, depth, heads, mlpHidden, numClasses: 0, layerNormEps: 1e-6 });

/** Least squares for y = X c (normal equations; a handful of unknowns). */
function solve(rows: number[][], y: number[]): number[] {
  const k = rows[0].length;
  const a = Array.from({ length: k }, (_, i) => Array.from({ length: k + 1 }, (_, j) => (j < k ? rows.reduce((s, r) => s + r[i] * r[j], 0) : rows.reduce((s, r, n) => s + r[i] * y[n], 0))));
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const f = a[j][i] / a[i][i];
      for (let c = i; c <= k; c++) a[j][c] -= f * a[i][c];
    }
  }
  const x = new Array<number>(k).fill(0);
  for (let i = k - 1; i >= 0; i--) x[i] = (a[i][k] - a[i].slice(i + 1, k).reduce((s, v, j) => s + v * x[i + 1 + j], 0)) / a[i][i];
  return x;
}

async function main(): Promise<void> {
  const info = await initBackend('auto', { threads: 1 });
  const configs = [vit(28, 7, 64, 3, 2, 256), vit(40, 8, 80, 3, 4, 320), vit(56, 8, 48, 4, 2, 192), vit(32, 4, 64, 3, 4, 128), vit(36, 4, 48, 2, 3, 192), vit(48, 8, 96, 2, 3, 384), vit(24, 4, 48, 3, 6, 96), vit(44, 4, 64, 2, 2, 256), vit(52, 4, 48, 2, 2, 192), vit(60, 4, 32, 2, 2, 128)];
  const methods: MethodSpec[] = [{ method: 'full' }, { method: 'lora', rank: 2 }, { method: 'block', p: 1 }];
  const train = new Map<string, { rows: number[][]; y: number[] }>();
  const evals = new Map<string, { rows: number[][]; y: number[] }>();
  const regime = (n: number) => (n <= FUSED_ATTENTION_MAX_TOKENS ? `<= ${FUSED_ATTENTION_MAX_TOKENS} tokens` : `> ${FUSED_ATTENTION_MAX_TOKENS} tokens`);
  const add = (map: typeof train, key: string, row: number[], y: number) => {
    const entry = map.get(key) ?? { rows: [], y: [] };
    entry.rows.push(row);
    entry.y.push(y);
    map.set(key, entry);
  };
  for (const config of configs) {
    const n = tokens({ ...config });
    for (const spec of methods) {
      const batch = 4;
      const base = VisionTransformer.init(config, { seed: 3 });
      const surgery = applySurgery(base, spec, { classes: 10, seed: 1 });
      base.dispose();
      const settings = { optimizer: 'sgd', momentum: 0.9, schedule: 'constant', lr: 0.01, warmupSteps: 0, steps: 10, batchSize: batch, seed: 0 } as const;
      const session = new TrainingSession({ model: surgery.model, trainable: surgery.trainable, firstTrainableBlock: surgery.firstTrainableBlock, numClasses: 10, settings, microBatch: batch });
      const images = tf.randomNormal([batch, config.imageSize, config.imageSize, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
      const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), 'int32');
      session.step(images, labels);
      const resident = tf.memory().numBytes - surgery.trainableCount * 4 - images.size * 4;
      const profile = await tf.profile(() => void session.step(images, labels));
      const depth = surgery.model.blocks.length;
      const tapeBlocks = embeddingsTrain(surgery.model) ? depth : depth - surgery.firstTrainableBlock;
      const shape = { model: { ...config, depth }, tapeBlocks, trainableParams: surgery.trainableCount, optimizerSlots: 1, residentBytes: resident };
      // The estimate with zero tape coefficients is everything but the tape's activations.
      const withoutTape = trainStepBytes(shape, batch, batch, { tapePerTokenWidth: 0, tapePerTokenMlp: 0 });
      add(train, regime(n), [tapeBlocks * n * config.width, tapeBlocks * n * config.mlpHidden], (profile.peakBytes - withoutTape) / batch);
      session.dispose();
      surgery.model.dispose();
      tf.dispose([images, labels]);
    }
    const model = VisionTransformer.init(config, { seed: 3 });
    const batch = 6;
    const images = tf.randomNormal([batch, config.imageSize, config.imageSize, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    tf.dispose(model.embedCls(images, {}));
    const resident = tf.memory().numBytes - images.size * 4;
    const profile = await tf.profile(() => void tf.dispose(model.embedCls(images, {})));
    add(evals, regime(n), [n * config.width, n * config.mlpHidden, config.heads * n * n], (profile.peakBytes - resident - images.size * 4) / batch);
    model.dispose();
    images.dispose();
  }
  process.stdout.write(`on ${info.description}\n`);
  // The MLP's activations (GELU, the norms) go through the same kernels whatever the attention
  // route, and the longer sequences are too few to separate them: their MLP coefficients are the
  // short sequences', and the rest is fitted with them fixed.
  const short = regime(1);
  const long = regime(FUSED_ATTENTION_MAX_TOKENS + 1);
  const fit = (map: typeof train, fixedColumn: number) => {
    const { rows, y } = map.get(short)!;
    const free = solve(rows, y);
    const other = map.get(long)!;
    const fixed = free[fixedColumn];
    const reduced = solve(
      other.rows.map((r) => r.filter((_, i) => i !== fixedColumn)),
      other.y.map((v, n) => v - other.rows[n][fixedColumn] * fixed),
    );
    reduced.splice(fixedColumn, 0, fixed);
    const error = (c: number[], set: { rows: number[][]; y: number[] }) => Math.max(...set.rows.map((r, n) => Math.abs(r.reduce((s, v, i) => s + v * c[i], 0) / set.y[n] - 1)));
    return { short: free, long: reduced, errors: [error(free, { rows, y }), error(reduced, other)], counts: [rows.length, other.rows.length] };
  };
  const t = fit(train, 1);
  const e = fit(evals, 1);
  const show = (c: number[]) => c.map((v) => v.toFixed(1)).join(', ');
  process.stdout.write(`train (tape bytes per token x width, per token x MLP width): ${short} [${show(t.short)}] over ${t.counts[0]} steps, worst ${(100 * t.errors[0]).toFixed(0)}%; ${long} [${show(t.long)}] over ${t.counts[1]}, worst ${(100 * t.errors[1]).toFixed(0)}%\n`);
  process.stdout.write(`evaluation (per token x width, per token x MLP width, per head x token pair): ${short} [${show(e.short)}] over ${e.counts[0]} forwards, worst ${(100 * e.errors[0]).toFixed(0)}%; ${long} [${show(e.long)}] over ${e.counts[1]}, worst ${(100 * e.errors[1]).toFixed(0)}%\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`fitMemory: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
