// The DINO pretraining step of pipelines/pretrain-dino-digits.json (batch 64: 2 global 28 px and
// 6 local 14 px views, K 1,024, head 512/128 with batch norm, KoLeo), timed alone, on random
// views. With --ab the steps alternate between vitpeft's own wasm kernels (di/wasmProducts.ts)
// and TensorFlow.js's stock route, in one process, so both medians see the same machine; with
// --profile one step's kernels are listed, summed per kernel name (per name and shapes with
// --shapes; the first --top K, default 20).
//
//   node dist/bench/dinoStep.js [--steps N] [--ab] [--profile [--shapes] [--top K]] [--threads N]

import * as tf from '@tensorflow/tfjs';
import { backendFromArgs, flagValue } from './args';
import { OWN_KERNELS } from '../models/ops/backendKernels';
import { PRETRAIN_DINO_DIGITS } from '../pipelines/builtin';
import { resolveDino } from '../pipelines/dinoRecipe';
import { loadPretrainFile } from '../pipelines/pretrainSpec';
import { resolveTrain } from '../pipelines/spec';
import { DinoModels } from '../stages/trainer/dino/models';
import { DinoSession } from '../stages/trainer/dino/session';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

async function main(args: string[]): Promise<void> {
  const value = (flag: string) => flagValue(args, flag);
  const info = await backendFromArgs(args);
  const steps = Number(value('--steps') ?? 10);
  const { spec } = loadPretrainFile(PRETRAIN_DINO_DIGITS);
  const dino = resolveDino(spec);
  const size = spec.preprocess.size;
  const models = DinoModels.init({ imageSize: size, inChannels: 3, layerNormEps: 1e-6, ...spec.architecture }, dino, 1);
  const batch = spec.train.batchSize;
  const { steps: trainSteps, lr, warmupSteps, schedule } = resolveTrain(spec.train);
  // The last layer trains from the first step (the recipe freezes it for its first 60).
  const session = new DinoSession({ models, dino: { ...dino, freezeLastLayerSteps: 0 }, train: { steps: trainSteps, batchSize: batch, seed: 1, lr, warmupSteps, schedule } });
  const globals = tf.randomNormal([2 * batch, size, size, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const local = dino.crops.localCrops > 0 ? (tf.randomNormal([dino.crops.localCrops * batch, dino.crops.localSize, dino.crops.localSize, 3], 0, 1, 'float32', 2) as tf.Tensor4D) : null;
  const stock = OWN_KERNELS.map((name) => tf.getKernel(name, tf.getBackend())).filter((config): config is tf.KernelConfig => config !== undefined);
  const own = (on: boolean) => {
    for (const config of stock) {
      const present = tf.getKernel(config.kernelName, config.backendName) !== undefined;
      if (on && !present) tf.registerKernel(config);
      if (!on && present) tf.unregisterKernel(config.kernelName, config.backendName);
    }
  };
  const ab = args.includes('--ab');
  if (ab && stock.length === 0) throw new Error(`--ab: the ${tf.getBackend()} backend has none of vitpeft's own kernels`);
  for (let i = 0; i < 2; i++) session.step(globals, local);
  const times: Record<'own' | 'stock', number[]> = { own: [], stock: [] };
  const before = tf.memory().numTensors;
  for (let i = 0; i < steps * (ab ? 2 : 1); i++) {
    const mode = ab && i % 2 === 1 ? 'stock' : stock.length > 0 ? 'own' : 'stock';
    own(mode === 'own');
    const started = process.hrtime.bigint();
    session.step(globals, local);
    times[mode].push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  own(true);
  const leaked = tf.memory().numTensors - before;
  process.stdout.write(`DINO step (${PRETRAIN_DINO_DIGITS.split('/').slice(-2).join('/')}: batch ${batch}, 2 x ${size} px + ${dino.crops.localCrops} x ${dino.crops.localSize} px views, K ${dino.outDim}) on ${info.description}\n`);
  for (const mode of ['own', 'stock'] as const) {
    if (times[mode].length > 0) process.stdout.write(`  ${mode === 'own' ? "vitpeft's own kernels" : 'stock tfjs kernels   '}: median ${median(times[mode]).toFixed(0)} ms a step, min ${Math.min(...times[mode]).toFixed(0)} ms (${times[mode].length} steps)\n`);
  }
  if (ab) process.stdout.write(`  ratio own / stock: ${(median(times.own) / median(times.stock)).toFixed(2)}\n`);
  process.stdout.write(`  tensors left by the timed steps: ${leaked}\n`);
  if (args.includes('--profile')) {
    const byShape = args.includes('--shapes');
    const profile = await tf.profile(() => void session.step(globals, local));
    const totals = new Map<string, { ms: number; count: number }>();
    for (const kernel of profile.kernels) {
      const key = byShape ? `${kernel.name} -> ${JSON.stringify(kernel.outputShapes)} <- ${JSON.stringify(kernel.inputShapes)}` : kernel.name;
      const entry = totals.get(key) ?? { ms: 0, count: 0 };
      entry.ms += kernel.kernelTimeMs as number;
      entry.count++;
      totals.set(key, entry);
    }
    process.stdout.write(`  one step: ${profile.kernels.length} kernel calls\n`);
    for (const [name, { ms, count }] of [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(flagValue(args, '--top') ?? 20))) process.stdout.write(`${ms.toFixed(1).padStart(9)} ms ${String(count).padStart(5)}x  ${name}\n`);
  }
  tf.dispose([globals, ...(local ? [local] : [])]);
  session.dispose();
  models.dispose();
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`dinoStep: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
