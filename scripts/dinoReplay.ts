// What a vitpeft DINO pretraining starts from and trains on, written for a replay in PyTorch
// (scripts/dino_explore.py --init FILE.json --views FILE.f32): the initial student's parameters
// (JSON by name, vitpeft's layouts) and the multi-crop views of its first N steps (float32, per
// step the 2B global views then the N_local B local views, NHWC, normalised), in the batch
// stream's order (epochOrder, last partial batch dropped) with the views' seeded draws.
//   node dist/scripts/dinoReplay.js pipelines/pretrain-dino-digits.json 1500 /tmp/init.json /tmp/views.f32

import 'reflect-metadata';
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import { loadPretrainFile } from '../pipelines/pretrainSpec';
import { resolveDino } from '../pipelines/dinoRecipe';
import { epochOrder } from '../stages/dataset/batches';
import { openDataUri } from '../stages/dataset/dataUri';
import { DinoModels } from '../stages/trainer/dino/models';
import { MultiCrop } from '../stages/trainer/dino/multiCrop';

/** Writes the initial student of the pretraining file to initFile and the views of its first `steps` steps to viewsFile. */
export async function writeReplay(file: string, steps: number, initFile: string, viewsFile: string): Promise<void> {
  const { spec, baseDir } = loadPretrainFile(file);
  const dino = resolveDino(spec);
  const { architecture: a, preprocess, train } = spec;
  const seed = train.seed ?? 0;
  const models = DinoModels.init(
    { imageSize: preprocess.size, patchSize: a.patchSize, inChannels: 3, width: a.width, depth: a.depth, heads: a.heads, mlpHidden: a.mlpHidden, layerNormEps: a.layerNormEps ?? 1e-6 },
    dino,
    seed,
  );
  const init: Record<string, { shape: number[]; data: number[] }> = {};
  for (const [name, variable] of models.studentParameters()) init[name] = { shape: variable.shape, data: Array.from(variable.dataSync()) };
  models.dispose();
  fs.writeFileSync(initFile, JSON.stringify(init));

  const source = await openDataUri(spec.data.train, { baseDir });
  const size = preprocess.size;
  const crops = new MultiCrop(dino, size, { mean: preprocess.mean ?? [0.5, 0.5, 0.5], std: preprocess.std ?? [0.5, 0.5, 0.5] }, seed);
  const batch = train.batchSize;
  const perEpoch = Math.floor(source.size / batch);
  const out = fs.openSync(viewsFile, 'w');
  try {
    for (let step = 0; step < steps; step++) {
      const epoch = Math.floor(step / perEpoch);
      const first = (step % perEpoch) * batch;
      const indices = Array.from(epochOrder(source.size, { seed }, epoch).subarray(first, first + batch));
      const pixels = new Float32Array(batch * size * size * 3);
      for (let b = 0; b < batch; b++) {
        const sample = await source.read(indices[b]);
        if (sample === null) throw new Error(`${spec.data.train}: image ${indices[b]} could not be read`);
        if (sample.height !== size || sample.width !== size) throw new Error(`${spec.data.train}: image ${indices[b]} is ${sample.height}x${sample.width}, expected ${size}x${size} (the replay takes images at their stored size)`);
        for (let p = 0; p < size * size; p++) {
          for (let c = 0; c < 3; c++) pixels[(b * size * size + p) * 3 + c] = sample.pixels[p * sample.channels + Math.min(c, sample.channels - 1)] / 255;
        }
      }
      const views = crops.cropBatch({ pixels, shape: [batch, size, size, 3], indices, epoch });
      fs.writeSync(out, Buffer.from(views.globals.buffer));
      fs.writeSync(out, Buffer.from(views.locals.buffer));
    }
  } finally {
    fs.closeSync(out);
  }
}

async function main(): Promise<void> {
  const [file, stepsArg, initFile, viewsFile] = process.argv.slice(2);
  const steps = Number(stepsArg);
  if (!file || !initFile || !viewsFile || !Number.isInteger(steps) || steps < 1) {
    process.stderr.write('usage: node dist/scripts/dinoReplay.js PRETRAIN.json STEPS INIT.json VIEWS.f32\n');
    process.exitCode = 2;
    return;
  }
  // The seeded initialisation is drawn in JavaScript: the same weights on every backend.
  await tf.setBackend('cpu');
  await writeReplay(file, steps, initFile, viewsFile);
  process.stdout.write(`${initFile}: the initial student; ${viewsFile}: the views of ${steps} steps\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`dinoReplay: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
