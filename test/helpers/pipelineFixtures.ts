// A whole pipeline on tiny synthetic data, small enough to run in seconds: a random 16 px ViT,
// a new task of reddish versus bluish noise (separable), and a pretraining domain of dark versus
// bright noise for retention.

import { randomFunction } from '../../common/random';
import * as fs from 'fs';
import * as path from 'path';
import { writeSafetensors } from '../../models/checkpoint/safetensors';
import { saveVit } from '../../models/checkpoint/vitCheckpoint';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { tempFolder } from './datasetFixtures';


/**
 * `count` 16x16 RGB noise images in two classes: for 'colour', class 0 leans red and class 1 blue;
 * for 'brightness', class 0 is dark and class 1 bright. Either is separable from the mean of the
 * patches, which even a randomly initialised ViT's class token carries.
 */
export function toyDataset(file: string, count: number, kind: 'colour' | 'brightness', seed: number): void {
  const random = randomFunction(seed);
  const size = 16;
  const images = new Uint8Array(count * size * size * 3);
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const label = n % 2;
    labels[n] = label;
    const base = kind === 'colour' ? (label === 0 ? [170, 110, 70] : [70, 110, 170]) : label === 0 ? [80, 80, 80] : [160, 160, 160];
    for (let p = 0; p < size * size; p++) {
      for (let c = 0; c < 3; c++) images[(n * size * size + p) * 3 + c] = Math.round(base[c] + 120 * (random() - 0.5));
    }
  }
  writeSafetensors(file, [
    ['images', { dtype: 'U8', shape: [count, size, size, 3], data: images }],
    ['labels', { dtype: 'I32', shape: [count], data: labels }],
  ]);
}

export interface PipelineFixture {
  readonly folder: string;
  readonly file: string;
  readonly spec: Record<string, unknown>;
}

/** Writes the model, the four data files and a pipeline file; `overrides` replace top-level keys. */
export async function pipelineFixture(overrides: Record<string, unknown> = {}): Promise<PipelineFixture> {
  const folder = tempFolder('vitpeft-pipeline-');
  const model = VisionTransformer.init({ imageSize: 16, patchSize: 4, inChannels: 3, width: 32, depth: 3, heads: 2, mlpHidden: 64, numClasses: 0, layerNormEps: 1e-6 });
  await saveVit(model, path.join(folder, 'model.safetensors'));
  model.dispose();
  toyDataset(path.join(folder, 'train.safetensors'), 64, 'colour', 1);
  toyDataset(path.join(folder, 'test.safetensors'), 32, 'colour', 2);
  toyDataset(path.join(folder, 'bank.safetensors'), 40, 'brightness', 3);
  toyDataset(path.join(folder, 'query.safetensors'), 20, 'brightness', 4);
  const spec = {
    name: 'toy',
    model: { checkpoint: 'model.safetensors' },
    data: { train: 'safetensors:train.safetensors', test: 'safetensors:test.safetensors', retention: { bank: 'safetensors:bank.safetensors', query: 'safetensors:query.safetensors' } },
    preprocess: { size: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], train: 'native', test: 'native' },
    train: { steps: 24, batchSize: 16, optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0, warmupSteps: 2, schedule: 'cosine', seed: 0 },
    evaluate: { every: 12, batchSize: 32, knn: { k: [5, 10], temperature: 0.07, headline: 10 } },
    methods: [{ method: 'full' }, { method: 'linear' }, { method: 'topk', k: 1 }, { method: 'lora', rank: 2 }, { method: 'block', p: 1 }],
    ...overrides,
  };
  const file = path.join(folder, 'toy.json');
  fs.writeFileSync(file, JSON.stringify(spec, null, 2));
  return { folder, file, spec };
}
