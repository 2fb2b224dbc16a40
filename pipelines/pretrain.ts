// Pretraining a ViT from a seeded random init on one labelled dataset (supervised, with a head;
// "objective": "dino" is handed to dinoPretrain.ts), through the same job loop as fine-tuning:
// test accuracy on the file's schedule (evals.csv), every step in metrics.csv, training-state
// checkpoints, a stop request honoured at the next step with a checkpoint, and resume. The result
// is a timm-layout checkpoint with the architecture and provenance in its metadata; a resumed
// pretraining writes the same file, byte for byte, as an uninterrupted one.
//
// The folder (out/pretrain-<name>): pretrain.json (what --resume needs), metrics.csv, evals.csv,
// checkpoints/pretrain.safetensors while unfinished.

import { isLeft } from 'fp-ts/Either';
import * as t from 'io-ts';
import * as path from 'path';
import { Observable, defer, from, map, of } from 'rxjs';
import type { CheckpointEvent, EvalEvent, StepEvent } from '../common/events';
import { saveVit } from '../models/checkpoint/vitCheckpoint';
import { VisionTransformer } from '../models/vit/visionTransformer';
import { EvaluationData } from '../stages/evaluator/stage';
import { TrainingStateFile } from '../stages/trainer/trainingState';
import { pretrainDino } from './dinoPretrain';
import type { Stages } from './job';
import { LoopJob, runJobLoop } from './loop/jobLoop';
import { trainingStateCheckpoint } from './loop/checkpoint';
import { evaluationSchedule } from './loop/schedule';
import { transformFor } from './prepare';
import { decodePretrain, supervisedTest } from './pretrainSpec';
import { LoadedPretrain, PRETRAIN_RECORD, PRETRAIN_RECORD_FORMAT, PretrainEndEvent, PretrainOptions, PretrainResult, PretrainStatus, PRETRAIN_CHECKPOINT, PretrainProgress, openPretrainCheckpoint, pretrainFingerprint, PretrainLogs, runPretraining, startFolder } from './pretrainFolder';
import { CHECKPOINT_FOLDER, ResumeError, readRecordFile } from './resume';
import { closed, formatErrors } from './codecs';
import { resolveTrain } from './spec';

export type { LoadedPretrain, PretrainEndEvent, PretrainOptions, PretrainResult, PretrainStatus };
export { PRETRAIN_RECORD, PRETRAIN_RECORD_FORMAT, pretrainFingerprint };

export type PretrainEvent = StepEvent | EvalEvent | CheckpointEvent | PretrainEndEvent;

const METRIC_COLUMNS = ['run', 'step', 'epoch', 'loss', 'lr', 'images_per_second'] as const;
const EVAL_COLUMNS = ['run', 'step', 'test_accuracy', 'seconds'] as const;

/** The pretraining as a LoopJob: a supervised objective on a freshly initialised ViT. */
function supervisedPretrainJob(stages: Pick<Stages, 'dataset' | 'trainer' | 'evaluator'>, loaded: LoadedPretrain, data: PretrainData, options: PretrainOptions, result: { testAccuracy: number }): LoopJob<PretrainEvent> {
  const { spec } = loaded;
  const started = Date.now();
  const settings = resolveTrain(spec.train);
  const { opened } = data;
  const fromStep = opened?.state.header.step ?? 0;
  const seconds = () => (opened?.progress.seconds ?? 0) + (Date.now() - started) / 1000;
  if (opened?.progress.measure !== undefined) result.testAccuracy = opened.progress.measure;
  const model = data.model;
  const named = model.namedParameters();
  const every = spec.evaluate?.every ?? 0;
  const end = (status: PretrainStatus, step: number, note?: string): PretrainEndEvent => ({ kind: 'pretrain-end', status, step, note });
  return {
    steps: settings.steps,
    opening: of<PretrainEvent>(),
    train: (hooks) => {
      const batches = stages.dataset.batches(data.train, { batchSize: settings.batchSize, seed: settings.seed, epochs: Infinity, dropLast: true, transform: data.trainTransform, startStep: fromStep });
      const trainable = named.map(([, variable]) => variable);
      // An explicit train.microBatch accumulates; "auto" steps whole batches (pretraining makes no memory plan).
      const microBatch = typeof settings.microBatch === 'number' ? settings.microBatch : undefined;
      return stages.trainer.train({ model, trainable, firstTrainableBlock: 0, numClasses: data.numClasses, settings, microBatch }, batches, hooks);
    },
    stepEvent: (trained) => ({ kind: 'step', method: spec.name, seed: settings.seed, step: trained.step, steps: settings.steps, epoch: trained.epoch, loss: trained.loss, lr: trained.lr, imagesPerSecond: trained.imagesPerSecond }),
    followUps: [
      {
        due: evaluationSchedule(every, settings.steps),
        run: (trained) =>
          from(stages.evaluator.evaluate(model, data.evaluation, { newTask: true, retention: false, unplugged: false })).pipe(
            map((evaluated): EvalEvent => {
              result.testAccuracy = evaluated.newTaskAccuracy ?? NaN;
              return { kind: 'eval', method: spec.name, seed: settings.seed, step: trained.step, ...evaluated };
            }),
          ),
      },
    ],
    checkpoint: trainingStateCheckpoint<PretrainEvent>({
      file: path.join(options.outDir, CHECKPOINT_FOLDER, PRETRAIN_CHECKPOINT),
      every: spec.train.checkpointEvery ?? (every > 0 ? every : Math.max(1, Math.ceil(settings.steps / 10))),
      opened: opened?.state,
      names: named.map(([name]) => name),
      progress: (): PretrainProgress => ({ fingerprint: pretrainFingerprint(spec), measure: Number.isNaN(result.testAccuracy) ? undefined : result.testAccuracy, seconds: seconds() }),
      event: (step, file) => ({ kind: 'checkpoint', method: spec.name, seed: settings.seed, step, file }),
    }),
    stop: options.stop,
    finish: (): Observable<PretrainEvent> =>
      defer(async () => {
        const provenance = { name: spec.name, train: spec.data.train, test: supervisedTest(spec), steps: settings.steps, seed: settings.seed, test_accuracy: Number(result.testAccuracy.toFixed(4)) };
        await saveVit(model, data.output, { 'vitpeft.pretrain': JSON.stringify(provenance) });
        return end('ok', settings.steps);
      }),
    interrupted: (step) => end('interrupted', step, `interrupted after step ${step} of ${settings.steps}; continue with: vitpeft pretrain --resume ${options.outDir}`),
    diverged: (error) => end('diverged', error.step, error.message),
    dispose: () => undefined,
  };
}

interface PretrainData {
  readonly model: VisionTransformer;
  readonly train: Awaited<ReturnType<Stages['dataset']['open']>>;
  readonly trainTransform: ReturnType<typeof transformFor>;
  readonly evaluation: EvaluationData;
  readonly numClasses: number;
  readonly output: string;
  /** The checkpoint a resume continues from (the job loop closes it). */
  readonly opened?: { readonly state: TrainingStateFile; readonly progress: PretrainProgress };
}

async function preparePretrain(stages: Pick<Stages, 'dataset'>, loaded: LoadedPretrain, options: PretrainOptions): Promise<PretrainData> {
  const { spec, baseDir } = loaded;
  const train = await stages.dataset.open(spec.data.train, { baseDir });
  const test = await stages.dataset.open(supervisedTest(spec), { baseDir });
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
  const trainTransform = transformFor(spec.preprocess.train ?? 'native', size, normalization);
  try {
    // Before the CSVs are opened for appending: a resume trims them back to the checkpoint.
    const opened = options.resume ? openPretrainCheckpoint(options.outDir, spec, (file) => TrainingStateFile.open(file)) : undefined;
    return { model, train, trainTransform, evaluation, numClasses, output: path.resolve(baseDir, spec.output), opened };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

const PretrainRecordCodec = closed('pretraining record', { format: t.literal(PRETRAIN_RECORD_FORMAT), spec: t.unknown, file: t.string, baseDir: t.string });

/** Reads a pretraining folder's pretrain.json: the spec goes through the same decoder as a file. */
export function readPretrainRecord(outDir: string): LoadedPretrain {
  const { file, value } = readRecordFile(outDir, PRETRAIN_RECORD, 'not a pretraining folder; start it again without --resume');
  const decoded = PretrainRecordCodec.decode(value);
  if (isLeft(decoded)) throw new ResumeError(file, `not a vitpeft pretraining record: ${formatErrors(decoded.left).join('; ')}`);
  const record = decoded.right;
  return { spec: decodePretrain(record.spec, `${file} (spec)`), file: record.file, baseDir: record.baseDir };
}

export async function pretrain(stages: Pick<Stages, 'dataset' | 'trainer' | 'evaluator'>, loaded: LoadedPretrain, options: PretrainOptions): Promise<PretrainResult> {
  if (loaded.spec.objective === 'dino') return pretrainDino(stages, loaded, options);
  const { spec } = loaded;
  const started = Date.now();
  startFolder(loaded, options);
  const data = await preparePretrain(stages, loaded, options);
  const result = { testAccuracy: NaN };
  const steps = resolveTrain(spec.train).steps;
  const logEvery = Math.max(1, Math.floor(steps / 20));
  try {
    options.log(`pretraining '${spec.name}': ${data.model.parameterCount().toLocaleString('en-US')} parameters on ${data.train.description} (${data.numClasses} classes), ${steps} steps`);
    const record = (event: PretrainEvent, logs: PretrainLogs<(typeof METRIC_COLUMNS)[number], (typeof EVAL_COLUMNS)[number]>) => {
      if (event.kind === 'step') {
        logs.metrics.append({ run: spec.name, step: event.step, epoch: event.epoch, loss: event.loss, lr: event.lr, images_per_second: event.imagesPerSecond });
        if (event.step % logEvery === 0) options.log(`  step ${event.step}/${steps} loss ${event.loss.toFixed(4)} lr ${event.lr.toPrecision(3)} ${event.imagesPerSecond.toFixed(1)} img/s`);
      } else if (event.kind === 'eval') {
        logs.evals.append({ run: spec.name, step: event.step, test_accuracy: event.newTaskAccuracy ?? NaN, seconds: event.seconds });
        options.log(`  test accuracy ${(event.newTaskAccuracy ?? NaN).toFixed(2)}% at step ${event.step}`);
      }
    };
    const columns = { metrics: METRIC_COLUMNS, evals: EVAL_COLUMNS };
    const end = await runPretraining(options.outDir, columns, data.opened?.state, record, () => runJobLoop(() => supervisedPretrainJob(stages, loaded, data, options, result)));
    return {
      status: end?.status ?? 'ok',
      output: data.output,
      testAccuracy: result.testAccuracy,
      parameters: data.model.parameterCount(),
      steps: end?.step ?? steps,
      seconds: (Date.now() - started) / 1000,
      note: end?.note,
    };
  } finally {
    data.model.dispose();
  }
}
