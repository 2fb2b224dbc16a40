// The tiny pipeline the examples run, in seconds: the default's digit ViT (pretrained by DINO, without labels, on digits 0-4)
// fine-tuned on 100 images of digits 5-9 for 20 steps, retention measured by k-NN on digits 0-4.
// It is a typed PipelineSpec object, checked by the compiler, and pipelineFromObject decodes it
// with the same io-ts codec as a pipeline file (see pipeline-in-code.ts).

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DEFAULT_MODEL, pipelineFromObject } from 'vitpeft';
import type { LoadedPipeline, MethodEntry, PipelineSpec } from 'vitpeft';

export function tinyDigitsSpec(methods: MethodEntry[] = [{ method: 'linear' }, { method: 'lora', rank: 2 }]): PipelineSpec {
  return {
    name: 'tiny-digits',
    model: { checkpoint: DEFAULT_MODEL },
    data: {
      train: 'mnist:train?classes=5-9&perClass=20',
      test: 'mnist:test?classes=5-9&perClass=10',
      retention: { bank: 'mnist:train?classes=0-4&perClass=20', query: 'mnist:test?classes=0-4&perClass=10' },
    },
    preprocess: { size: 28, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], train: 'native', test: 'native' },
    train: { steps: 20, batchSize: 16, optimizer: 'sgd', lr: 0.1, momentum: 0.9, warmupSteps: 2, schedule: 'cosine', seed: 0 },
    evaluate: { every: 10, batchSize: 128, knn: { k: [5, 10], temperature: 0.07, headline: 10 } },
    methods,
  };
}

export function tinyDigitsPipeline(methods?: MethodEntry[]): LoadedPipeline {
  return pipelineFromObject(tinyDigitsSpec(methods), { baseDir: process.cwd() });
}

/** A fresh output folder under the system's temporary folder. */
export function exampleOutDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vitpeft-${name}-`));
}
