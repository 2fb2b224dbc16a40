// Running a pipeline: load the pretrained model once, open the data, measure the pretrained
// baseline, then for each method (and seed) apply the surgery to a copy of the base, train it
// with evaluations every N steps, and report. Everything is a stream of PipelineEvents; the
// stages come in through the Stages object, so any of them can be replaced.

import * as fs from 'fs';
import * as path from 'path';
import { EMPTY, Observable, catchError, concat, concatMap, defer, finalize, from, map, of } from 'rxjs';
import { writeFileAtomic } from '../common/atomicWrite';
import { loadVit, saveVit } from '../models/checkpoint/vitCheckpoint';
import { Linear } from '../models/vit/linear';
import { VisionTransformer } from '../models/vit/visionTransformer';
import type { DatasetStage } from '../stages/dataset/stage';
import { DatasetSource } from '../stages/dataset/source';
import { Transform, TransformSpec, namedTransform, resolveTransform } from '../stages/dataset/transforms';
import { resolveDataPath } from '../stages/dataset/dataUri';
import { defaultCacheDir } from '../stages/dataset/downloads';
import type { EvaluationData, EvaluationResult, EvaluatorStage } from '../stages/evaluator/stage';
import type { ReporterStage } from '../stages/reporter/stage';
import { saveAdapters } from '../stages/surgery/loraFile';
import type { SurgeryStage } from '../stages/surgery/stage';
import { DivergedError, TrainSettings } from '../stages/trainer/session';
import type { TrainedStep, TrainerStage } from '../stages/trainer/stage';
import { BASELINE, EvalEvent, MethodResult, PipelineEvent, StepEvent } from './events';
import { LoadedPipeline, MethodEntry, PipelineSpec, methodName, resolveTrain } from './spec';

export interface Stages {
  readonly dataset: DatasetStage;
  readonly surgery: SurgeryStage;
  readonly trainer: TrainerStage;
  readonly evaluator: EvaluatorStage;
  readonly reporter: ReporterStage;
}

export interface RunOptions {
  /** The run's folder (out/<name>). */
  readonly outDir: string;
  /** Which backend runs, for the record. */
  readonly backend?: string;
  /** Run only these methods (by name). */
  readonly only?: readonly string[];
  /** Run every count-th job starting at index (1-based): shard i/n. */
  readonly shard?: { readonly index: number; readonly count: number };
  /** Seeds per method (overrides the file's `seeds`). */
  readonly seeds?: number;
  /** Save trained adapters (LoRA) or full checkpoints (other methods) into the run folder (default true). */
  readonly saveModels?: boolean;
}

export const DEFAULT_KNN = { k: [10, 20, 100, 200], temperature: 0.07, headline: 20 } as const;

export interface Job {
  readonly entry: MethodEntry;
  readonly method: string;
  readonly seed: number;
  readonly settings: TrainSettings & { readonly checkpointEvery: number };
}

/**
 * A checkpoint path from a pipeline file: `cache:NAME/FILE` is in the download cache (where
 * `vitpeft data fetch` puts it, e.g. cache:dino-vitb16/model.safetensors), `~/` is the home
 * folder, and other relative paths are relative to the file.
 */
export function resolveCheckpointPath(given: string, baseDir: string): string {
  if (given.startsWith('cache:')) return path.join(defaultCacheDir(), given.slice('cache:'.length));
  return resolveDataPath(given, baseDir);
}

/** The method x seed jobs a run will do, after --only and --shard. */
export function planJobs(spec: PipelineSpec, options: Pick<RunOptions, 'only' | 'shard' | 'seeds'>): Job[] {
  const names = spec.methods.map(methodName);
  for (const wanted of options.only ?? []) {
    if (!names.includes(wanted)) throw new Error(`--only: no method named '${wanted}' in the pipeline (methods: ${names.join(', ')})`);
  }
  const seeds = options.seeds ?? spec.seeds ?? 1;
  const jobs: Job[] = [];
  spec.methods.forEach((entry, index) => {
    if (options.only && !options.only.includes(names[index])) return;
    const train = resolveTrain(spec.train, entry.train);
    for (let s = 0; s < seeds; s++) {
      const seed = train.seed + s;
      jobs.push({ entry, method: names[index], seed, settings: { ...train, seed } });
    }
  });
  if (!options.shard) return jobs;
  const { index, count } = options.shard;
  return jobs.filter((_, i) => i % count === index - 1);
}

/** Named transform at the pipeline's size, with the pipeline's mean/std where given. */
export function transformFor(name: string, size: number, normalization?: { mean?: readonly number[]; std?: readonly number[] }): Transform {
  const spec: TransformSpec = namedTransform(name, { size });
  return resolveTransform({ ...spec, mean: normalization?.mean ?? spec.mean, std: normalization?.std ?? spec.std });
}

interface Prepared {
  readonly base: VisionTransformer;
  readonly train: DatasetSource;
  readonly trainTransform: Transform;
  readonly evaluation: EvaluationData;
  readonly numClasses: number;
  readonly frozenHead: Linear | null;
  readonly knnHeadline: number;
  dispose(): void;
}

async function prepare(stages: Stages, loaded: LoadedPipeline, options: RunOptions): Promise<Prepared> {
  const { spec, baseDir } = loaded;
  const checkpoint = resolveCheckpointPath(spec.model.checkpoint, baseDir);
  const { model: base } = loadVit(checkpoint, {
    heads: spec.model.heads,
    layerNormEps: spec.model.layerNormEps,
    allowUnknownKeys: spec.model.allowUnknownKeys,
    imageSize: spec.preprocess.size,
  });
  try {
    const open = (uri: string) => stages.dataset.open(uri, { baseDir });
    const train = await open(spec.data.train);
    const test = await open(spec.data.test);
    const retention = spec.data.retention ? { bank: await open(spec.data.retention.bank), query: await open(spec.data.retention.query) } : undefined;
    const numClasses = Math.max(train.numClasses, test.numClasses);
    if (numClasses < 2) throw new Error(`${spec.data.train}: the new task needs at least 2 classes, the data has ${numClasses}`);
    const size = spec.preprocess.size;
    const normalization = { mean: spec.preprocess.mean, std: spec.preprocess.std };
    const trainTransform = transformFor(spec.preprocess.train ?? 'paper-train', size, normalization);
    const testTransform = transformFor(spec.preprocess.test ?? 'paper-test', size, normalization);
    const retentionTransform = spec.preprocess.retention ? transformFor(spec.preprocess.retention, size) : testTransform;
    const knn = { k: spec.evaluate?.knn?.k ?? [...DEFAULT_KNN.k], temperature: spec.evaluate?.knn?.temperature ?? DEFAULT_KNN.temperature };
    const knnHeadline = spec.evaluate?.knn?.headline ?? (knn.k.includes(DEFAULT_KNN.headline) ? DEFAULT_KNN.headline : knn.k[0]);
    // The pretrained checkpoint's own head can only be scored on queries labelled in its classes.
    const headClasses = base.head?.outFeatures ?? 0;
    const frozenHead = retention && base.head && retention.query.numClasses <= headClasses ? base.head : null;
    const evaluation: EvaluationData = {
      test: { source: test, transform: testTransform },
      retention: retention ? { ...retention, transform: retentionTransform } : undefined,
      knn,
      batchSize: spec.evaluate?.batchSize ?? Math.max(spec.train.batchSize, 32),
    };
    fs.mkdirSync(options.outDir, { recursive: true });
    writeFileAtomic(
      path.join(options.outDir, 'spec.json'),
      `${JSON.stringify(
        {
          ...spec,
          resolved: {
            file: loaded.file,
            checkpoint,
            backend: options.backend,
            model: base.config,
            data: { train: train.description, test: test.description, bank: retention?.bank.description, query: retention?.query.description },
            transforms: { train: trainTransform.description, test: testTransform.description, retention: retentionTransform.description },
            knn: { ...knn, headline: knnHeadline },
          },
        },
        null,
        2,
      )}\n`,
    );
    return { base, train, trainTransform, evaluation, numClasses, frozenHead, knnHeadline, dispose: () => base.dispose() };
  } catch (error) {
    base.dispose();
    throw error;
  }
}

function evalEvent(method: string, seed: number, step: number, result: EvaluationResult): EvalEvent {
  return { kind: 'eval', method, seed, step, ...result };
}

function runJob(stages: Stages, prepared: Prepared, job: Job, evaluateEvery: number, options: RunOptions): Observable<PipelineEvent> {
  return defer(() => {
    const started = Date.now();
    const { settings } = job;
    const surgery = stages.surgery.apply(prepared.base, job.entry, { classes: prepared.numClasses, seed: job.seed });
    const model = surgery.model;
    // Retention with adapters removed / new blocks bypassed is measured once, at the end.
    // Retention with adapters removed / new blocks bypassed: measured once, at the end of training.
    const unplugged = surgery.spec.method === 'lora' || surgery.spec.method === 'block';
    let last: EvaluationResult | undefined;
    let best: number | undefined;
    const shouldEvaluate = (step: number) => step === settings.steps || (evaluateEvery > 0 && step % evaluateEvery === 0);
    const batches = stages.dataset.batches(prepared.train, {
      batchSize: settings.batchSize,
      shuffle: true,
      seed: settings.seed,
      epochs: Infinity,
      dropLast: prepared.train.size >= settings.batchSize,
      transform: prepared.trainTransform,
    });
    const training = stages.trainer.train(
      { model, trainable: surgery.trainable, firstTrainableBlock: surgery.firstTrainableBlock, numClasses: prepared.numClasses, settings },
      batches,
      {
        afterStep: (trained: TrainedStep) =>
          shouldEvaluate(trained.step)
            ? from(stages.evaluator.evaluate(model, prepared.evaluation, { newTask: true, retention: true, unplugged: unplugged && trained.step === settings.steps, frozenHead: prepared.frozenHead })).pipe(
                map((result) => {
                  last = result;
                  if (result.newTaskAccuracy !== undefined) best = Math.max(best ?? -Infinity, result.newTaskAccuracy);
                  return evalEvent(job.method, job.seed, trained.step, result);
                }),
              )
            : EMPTY,
      },
    );
    const headline = prepared.knnHeadline;
    const finish = defer(async (): Promise<PipelineEvent> => {
      if (options.saveModels !== false) {
        const folder = path.join(options.outDir, 'models');
        if (surgery.spec.method === 'lora') await saveAdapters(model, path.join(folder, `${job.method}-seed${job.seed}.adapters.safetensors`));
        else await saveVit(model, path.join(folder, `${job.method}-seed${job.seed}.safetensors`), { 'vitpeft.method': job.method });
      }
      const retention = last?.retention?.[headline];
      const result: MethodResult = {
        method: job.method,
        seed: job.seed,
        trainableParams: surgery.trainableCount,
        steps: settings.steps,
        status: 'ok',
        newTaskAccuracy: last?.newTaskAccuracy,
        newTaskBest: best,
        retentionAccuracy: retention,
        retentionUnplugged: last?.retentionUnplugged?.[headline],
        frozenHeadAccuracy: last?.frozenHeadAccuracy,
        meanAccuracy: last?.newTaskAccuracy !== undefined && retention !== undefined ? (last.newTaskAccuracy + retention) / 2 : undefined,
        seconds: (Date.now() - started) / 1000,
      };
      return { kind: 'method-end', result };
    });
    return concat(
      of<PipelineEvent>({
        kind: 'method-start',
        method: job.method,
        seed: job.seed,
        trainableParams: surgery.trainableCount,
        description: surgery.description,
        steps: settings.steps,
        fromStep: 0,
      }),
      training.pipe(
        map((event): PipelineEvent => (event.kind === 'trained-step' ? stepEvent(job, event) : event)),
      ),
      finish,
    ).pipe(
      catchError((error: unknown) => {
        if (!(error instanceof DivergedError)) throw error;
        return of<PipelineEvent>({
          kind: 'method-end',
          result: { method: job.method, seed: job.seed, trainableParams: surgery.trainableCount, steps: error.step, status: 'diverged', note: error.message, seconds: (Date.now() - started) / 1000 },
        });
      }),
      finalize(() => model.dispose()),
    );
  });
}

function stepEvent(job: Job, trained: TrainedStep): StepEvent {
  return {
    kind: 'step',
    method: job.method,
    seed: job.seed,
    step: trained.step,
    steps: job.settings.steps,
    epoch: trained.epoch,
    loss: trained.loss,
    lr: trained.lr,
    imagesPerSecond: trained.imagesPerSecond,
  };
}

/** The run as a stream of events (not yet reported: see pipelines/composer for the reporter). */
export function runPipeline(stages: Stages, loaded: LoadedPipeline, options: RunOptions): Observable<PipelineEvent> {
  const jobs = planJobs(loaded.spec, options);
  const evaluateEvery = loaded.spec.evaluate?.every ?? 0;
  return defer(() => from(prepare(stages, loaded, options))).pipe(
    concatMap((prepared) => {
      const results: MethodResult[] = [];
      let baselineRetention: number | undefined;
      let baselineFrozenHead: number | undefined;
      const baseline = defer(() =>
        from(stages.evaluator.evaluate(prepared.base, prepared.evaluation, { newTask: false, retention: true, unplugged: false, frozenHead: prepared.frozenHead })),
      ).pipe(
        map((result) => {
          baselineRetention = result.retention?.[prepared.knnHeadline];
          baselineFrozenHead = result.frozenHeadAccuracy;
          return evalEvent(BASELINE, 0, 0, result);
        }),
      );
      return concat(
        of<PipelineEvent>({
          kind: 'run-start',
          run: loaded.spec.name,
          outDir: options.outDir,
          backend: options.backend ?? 'unknown',
          model: loaded.spec.model.checkpoint,
          jobs: jobs.map((job) => ({ method: job.method, seed: job.seed, steps: job.settings.steps })),
          knnK: prepared.evaluation.knn.k,
          knnHeadline: prepared.knnHeadline,
        }),
        prepared.evaluation.retention ? baseline : EMPTY,
        ...jobs.map((job) =>
          runJob(stages, prepared, job, evaluateEvery, options).pipe(
            map((event) => {
              if (event.kind === 'method-end') results.push(event.result);
              return event;
            }),
          ),
        ),
        defer(() => of<PipelineEvent>({ kind: 'run-end', baselineRetention, baselineFrozenHead, results, interrupted: false })),
      ).pipe(finalize(() => prepared.dispose()));
    }),
  );
}
