// Pretraining a ViT from a seeded random init on one labelled dataset (supervised, with a head),
// evaluating its test accuracy, and writing a timm-layout checkpoint with its architecture and
// provenance in the metadata. Uses the same dataset, trainer and evaluator stages as fine-tuning.

import * as path from 'path';
import { EMPTY, concatMap, from, lastValueFrom, map, tap } from 'rxjs';
import { saveVit } from '../models/checkpoint/vitCheckpoint';
import { VisionTransformer } from '../models/vit/visionTransformer';
import { EvaluationData } from '../stages/evaluator/stage';
import { CsvLog, CsvValue } from '../stages/reporter/csvLog';
import { Stages, transformFor } from './runner';
import { PretrainSpec } from './pretrainSpec';
import { resolveTrain } from './spec';

export interface PretrainResult {
  readonly output: string;
  readonly testAccuracy: number;
  readonly parameters: number;
  readonly seconds: number;
}

export async function pretrain(
  stages: Pick<Stages, 'dataset' | 'trainer' | 'evaluator'>,
  loaded: { spec: PretrainSpec; file: string; baseDir: string },
  options: { outDir: string; log: (line: string) => void },
): Promise<PretrainResult> {
  const { spec, baseDir } = loaded;
  const started = Date.now();
  const train = await stages.dataset.open(spec.data.train, { baseDir });
  const test = await stages.dataset.open(spec.data.test, { baseDir });
  const numClasses = Math.max(train.numClasses, test.numClasses);
  const settings = resolveTrain(spec.train);
  const size = spec.preprocess.size;
  const normalization = { mean: spec.preprocess.mean, std: spec.preprocess.std };
  const model = VisionTransformer.init(
    { ...spec.architecture, imageSize: size, inChannels: 3, numClasses, layerNormEps: spec.architecture.layerNormEps ?? 1e-6 },
    { seed: settings.seed },
  );
  const evaluation: EvaluationData = {
    test: { source: test, transform: transformFor(spec.preprocess.test ?? 'native', size, normalization) },
    knn: { k: [1], temperature: 0.07 },
    batchSize: spec.evaluate?.batchSize ?? Math.max(settings.batchSize, 64),
  };
  const every = spec.evaluate?.every ?? 0;
  const metrics = new CsvLog<Record<string, CsvValue>>(path.join(options.outDir, 'metrics.csv'), ['run', 'step', 'epoch', 'loss', 'lr', 'images_per_second', 'test_accuracy']);
  let testAccuracy = NaN;
  try {
    options.log(`pretraining '${spec.name}': ${model.parameterCount().toLocaleString('en-US')} parameters on ${train.description} (${numClasses} classes), ${settings.steps} steps`);
    const batches = stages.dataset.batches(train, {
      batchSize: settings.batchSize,
      seed: settings.seed,
      epochs: Infinity,
      dropLast: true,
      transform: transformFor(spec.preprocess.train ?? 'native', size, normalization),
    });
    const trainable = model.namedParameters().map(([, variable]) => variable);
    await lastValueFrom(
      stages.trainer
        .train({ model, trainable, firstTrainableBlock: 0, numClasses, settings }, batches, {
          afterStep: (step) =>
            step.step === settings.steps || (every > 0 && step.step % every === 0)
              ? from(stages.evaluator.evaluate(model, evaluation, { newTask: true, retention: false, unplugged: false })).pipe(map((result) => result.newTaskAccuracy ?? NaN))
              : EMPTY,
        })
        .pipe(
          concatMap((event) => {
            if (typeof event === 'number') {
              testAccuracy = event;
              options.log(`  test accuracy ${event.toFixed(2)}%`);
              return EMPTY;
            }
            return from([event]);
          }),
          tap((step) => {
            metrics.append({ run: spec.name, step: step.step, epoch: step.epoch, loss: step.loss, lr: step.lr, images_per_second: step.imagesPerSecond, test_accuracy: undefined });
            if (step.step % Math.max(1, Math.floor(settings.steps / 20)) === 0) {
              options.log(`  step ${step.step}/${settings.steps} loss ${step.loss.toFixed(4)} lr ${step.lr.toPrecision(3)} ${step.imagesPerSecond.toFixed(1)} img/s`);
            }
          }),
        ),
      { defaultValue: undefined },
    );
    const output = path.resolve(baseDir, spec.output);
    await saveVit(model, output, {
      'vitpeft.pretrain': JSON.stringify({ name: spec.name, train: spec.data.train, test: spec.data.test, steps: settings.steps, seed: settings.seed, test_accuracy: Number(testAccuracy.toFixed(4)) }),
    });
    return { output, testAccuracy, parameters: model.parameterCount(), seconds: (Date.now() - started) / 1000 };
  } finally {
    metrics.close();
    model.dispose();
  }
}
