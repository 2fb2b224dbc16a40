// Running a pipeline: load the pretrained model once, open the data, measure the pretrained
// baseline, then for each method (and seed) apply the surgery to a copy of the base, train it
// with evaluations every N steps, and report. Everything is a stream of PipelineEvents; the
// stages come in through the Stages object, so any of them can be replaced.
//
// Reliability: every checkpointEvery steps a job writes its training state (pipelines/resume.ts
// names the file); a stop request ends the job at the next step boundary with a checkpoint and
// an 'interrupted' result, and the run ends early; a resumed run restores finished jobs and
// continues the interrupted one from its checkpoint, giving the results of an uninterrupted run.

import * as fs from 'fs';
import * as path from 'path';
import { EMPTY, Observable, catchError, concat, concatMap, defer, finalize, from, map, of, throwError } from 'rxjs';
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
import { DivergedError, TrainingSession } from '../stages/trainer/session';
import { TrainingStateFile, saveTrainingState } from '../stages/trainer/trainingState';
import type { TrainedStep, TrainerStage } from '../stages/trainer/stage';
import { BASELINE, EvalEvent, MethodResult, PipelineEvent, StepEvent } from '../common/events';
import { CHECKPOINT_FOLDER, JobProgress, ResumeState, checkpointPath, jobFingerprint, jobKey, openJobCheckpoint, prepareResume, writeRunRecord } from './resume';
import { Job, RunOptions, planJobs } from './job';
import { LoadedPipeline } from './spec';

export interface Stages {
  readonly dataset: DatasetStage;
  readonly surgery: SurgeryStage;
  readonly trainer: TrainerStage;
  readonly evaluator: EvaluatorStage;
  readonly reporter: ReporterStage;
}

/** A job ended by a stop request after `step` completed steps (its checkpoint is written). */
class JobInterrupted extends Error {
  constructor(readonly step: number) {
    super(`interrupted after step ${step}`);
    this.name = 'JobInterrupted';
  }
}

export const DEFAULT_KNN = { k: [10, 20, 100, 200], temperature: 0.07, headline: 20 } as const;

/**
 * A checkpoint path from a pipeline file: `cache:NAME/FILE` is in the download cache (where
 * `vitpeft data fetch` puts it, e.g. cache:dino-vitb16/model.safetensors), `~/` is the home
 * folder, and other relative paths are relative to the file.
 */
export function resolveCheckpointPath(given: string, baseDir: string): string {
  if (given.startsWith('cache:')) return path.join(defaultCacheDir(), given.slice('cache:'.length));
  return resolveDataPath(given, baseDir);
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
  fs.mkdirSync(options.outDir, { recursive: true });
  if (!options.resume) {
    // A fresh run: what an earlier run left here must not be resumed into this one.
    fs.rmSync(path.join(options.outDir, CHECKPOINT_FOLDER), { recursive: true, force: true });
    writeRunRecord(options.outDir, loaded, options);
  }
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

/** Completes without a value after one turn of the event loop (timers, I/O and signal handlers run). */
function yieldToEventLoop(): Observable<never> {
  return new Observable<never>((subscriber) => {
    const handle = setImmediate(() => subscriber.complete());
    return () => clearImmediate(handle);
  });
}

interface JobResume {
  readonly fingerprint: string;
  /** A checkpoint to continue from. */
  readonly checkpoint?: string;
  /** Evaluations recorded before the checkpoint (re-emitted so plots see them, not re-recorded). */
  readonly evals: readonly EvalEvent[];
}

function runJob(stages: Stages, prepared: Prepared, loaded: LoadedPipeline, job: Job, evaluateEvery: number, options: RunOptions, resume: JobResume): Observable<PipelineEvent> {
  return defer(() => {
    const started = Date.now();
    const { settings } = job;
    const checkpointFile = checkpointPath(options.outDir, job);
    // Opened (and checked against this job) before the surgery, so a bad file costs nothing.
    const opened = resume.checkpoint ? openJobCheckpoint(resume.checkpoint, loaded.spec, job) : undefined;
    let pending: TrainingStateFile | undefined = opened?.state;
    const closePending = () => {
      pending?.close();
      pending = undefined;
    };
    let surgery: ReturnType<SurgeryStage['apply']>;
    try {
      surgery = stages.surgery.apply(prepared.base, job.entry, { classes: prepared.numClasses, seed: job.seed });
    } catch (error) {
      closePending();
      throw error;
    }
    const model = surgery.model;
    // Retention with adapters removed / new blocks bypassed: measured once, at the end of training.
    const unplugged = surgery.spec.method === 'lora' || surgery.spec.method === 'block';
    const fromStep = opened?.state.header.step ?? 0;
    let last: EvaluationResult | undefined = opened?.progress.last;
    let best: number | undefined = opened?.progress.best;
    const secondsBefore = opened?.progress.seconds ?? 0;
    const seconds = () => secondsBefore + (Date.now() - started) / 1000;
    const checkpointEvery = settings.checkpointEvery;
    const shouldEvaluate = (step: number) => step === settings.steps || (evaluateEvery > 0 && step % evaluateEvery === 0);
    const batches = stages.dataset.batches(prepared.train, {
      batchSize: settings.batchSize,
      shuffle: true,
      seed: settings.seed,
      epochs: Infinity,
      dropLast: prepared.train.size >= settings.batchSize,
      transform: prepared.trainTransform,
      startStep: fromStep,
    });
    const progress = (): JobProgress => ({ fingerprint: resume.fingerprint, method: job.method, seed: job.seed, best, last, seconds: seconds() });
    const checkpoint = (step: number, session: TrainingSession): PipelineEvent => {
      saveTrainingState(checkpointFile, session, surgery.trainableNames, progress());
      return { kind: 'checkpoint', method: job.method, seed: job.seed, step, file: checkpointFile };
    };
    const training = stages.trainer.train(
      { model, trainable: surgery.trainable, firstTrainableBlock: surgery.firstTrainableBlock, numClasses: prepared.numClasses, settings },
      batches,
      {
        onStart: (session) => {
          try {
            pending?.restoreInto(session, surgery.trainableNames);
          } finally {
            closePending();
          }
        },
        afterStep: (trained: TrainedStep, session) => {
          if (trained.step <= fromStep) {
            throw new Error(`the trainer stage trained step ${trained.step} but the job resumes after step ${fromStep}; a trainer stage must call onStart before its first step`);
          }
          const final = trained.step >= settings.steps;
          return concat(
            shouldEvaluate(trained.step)
              ? from(stages.evaluator.evaluate(model, prepared.evaluation, { newTask: true, retention: true, unplugged: unplugged && trained.step === settings.steps, frozenHead: prepared.frozenHead })).pipe(
                  map((result) => {
                    last = result;
                    if (result.newTaskAccuracy !== undefined) best = Math.max(best ?? -Infinity, result.newTaskAccuracy);
                    return evalEvent(job.method, job.seed, trained.step, result);
                  }),
                )
              : EMPTY,
            // In-memory data keeps a run on microtasks, where signal handlers never get their turn:
            // one macrotask yield per step lets a SIGINT set the stop flag before the check below.
            yieldToEventLoop(),
            // After the evaluation, so a checkpoint at an evaluation step carries that evaluation.
            defer(() => {
              const due = checkpointEvery > 0 && trained.step % checkpointEvery === 0 && !final;
              const stopping = !final && options.stop?.requested === true;
              if (!due && !stopping) return EMPTY;
              const event = of(checkpoint(trained.step, session));
              return stopping ? concat(event, throwError(() => new JobInterrupted(trained.step))) : event;
            }),
          );
        },
      },
    );
    const headline = prepared.knnHeadline;
    const removeCheckpoint = defer(() => {
      fs.rmSync(checkpointFile, { force: true });
      return EMPTY;
    });
    const resultOf = (status: MethodResult['status'], steps: number, note?: string): MethodResult => {
      const retention = last?.retention?.[headline];
      return {
        method: job.method,
        seed: job.seed,
        trainableParams: surgery.trainableCount,
        steps,
        status,
        newTaskAccuracy: last?.newTaskAccuracy,
        newTaskBest: best,
        retentionAccuracy: retention,
        retentionUnplugged: last?.retentionUnplugged?.[headline],
        frozenHeadAccuracy: last?.frozenHeadAccuracy,
        meanAccuracy: last?.newTaskAccuracy !== undefined && retention !== undefined ? (last.newTaskAccuracy + retention) / 2 : undefined,
        seconds: seconds(),
        note,
      };
    };
    const finish = defer(async (): Promise<PipelineEvent> => {
      if (options.saveModels !== false) {
        const folder = path.join(options.outDir, 'models');
        if (surgery.spec.method === 'lora') await saveAdapters(model, path.join(folder, `${job.method}-seed${job.seed}.adapters.safetensors`));
        else await saveVit(model, path.join(folder, `${job.method}-seed${job.seed}.safetensors`), { 'vitpeft.method': job.method });
      }
      return { kind: 'method-end', result: resultOf('ok', settings.steps) };
    });
    return concat(
      of<PipelineEvent>({
        kind: 'method-start',
        method: job.method,
        seed: job.seed,
        trainableParams: surgery.trainableCount,
        description: surgery.description,
        steps: settings.steps,
        fromStep,
      }),
      from(resume.evals),
      training.pipe(
        map((event): PipelineEvent => (event.kind === 'trained-step' ? stepEvent(job, event) : event)),
      ),
      finish,
      removeCheckpoint,
    ).pipe(
      catchError((error: unknown) => {
        if (error instanceof JobInterrupted) {
          const note = `interrupted after step ${error.step} of ${settings.steps}; continue with: vitpeft run --resume ${options.outDir}`;
          return of<PipelineEvent>({ kind: 'method-end', result: resultOf('interrupted', error.step, note) });
        }
        if (!(error instanceof DivergedError)) throw error;
        return concat(
          of<PipelineEvent>({
            kind: 'method-end',
            result: { method: job.method, seed: job.seed, trainableParams: surgery.trainableCount, steps: error.step, status: 'diverged', note: error.message, seconds: seconds() },
          }),
          removeCheckpoint,
        );
      }),
      finalize(() => {
        closePending();
        model.dispose();
      }),
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
  const stopRequested = () => options.stop?.requested === true;
  return defer(() => {
    // Checked before the model and data load, so a folder that cannot be resumed fails at once.
    const resume: ResumeState | undefined = options.resume ? prepareResume(options.outDir, loaded.spec, jobs) : undefined;
    return from(prepare(stages, loaded, options)).pipe(map((prepared) => ({ prepared, resume })));
  }).pipe(
    concatMap(({ prepared, resume }) => {
      const results: MethodResult[] = [];
      let baselineRetention: number | undefined;
      let baselineFrozenHead: number | undefined;
      // Set when a job was interrupted or left out because of a stop request.
      let interrupted = false;
      const recordBaseline = (event: EvalEvent): EvalEvent => {
        baselineRetention = event.retention?.[prepared.knnHeadline];
        baselineFrozenHead = event.frozenHeadAccuracy;
        return event;
      };
      const baseline = defer(() => {
        if (resume?.baseline) return of(recordBaseline(resume.baseline));
        if (stopRequested()) return EMPTY;
        return from(stages.evaluator.evaluate(prepared.base, prepared.evaluation, { newTask: false, retention: true, unplugged: false, frozenHead: prepared.frozenHead })).pipe(
          map((result) => recordBaseline(evalEvent(BASELINE, 0, 0, result))),
        );
      });
      const jobEvents = (job: Job): Observable<PipelineEvent> =>
        defer(() => {
          const key = jobKey(job.method, job.seed);
          const done = resume?.finished.get(key);
          // Finished jobs are replayed even after a stop, so results.csv keeps their rows.
          if (done) return concat(from(resume?.evals.get(key) ?? []), of<PipelineEvent>({ kind: 'method-end', result: done, restored: true }));
          if (interrupted || stopRequested()) {
            interrupted = true;
            return EMPTY;
          }
          const fingerprint = jobFingerprint(loaded.spec, job);
          const checkpoint = resume?.checkpoints.get(key);
          return runJob(stages, prepared, loaded, job, evaluateEvery, options, { fingerprint, checkpoint: checkpoint?.file, evals: checkpoint ? (resume?.evals.get(key) ?? []) : [] });
        }).pipe(
          map((event) => {
            if (event.kind === 'method-end') {
              results.push(event.result);
              if (event.result.status === 'interrupted') interrupted = true;
            }
            return event;
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
          resumed: options.resume === true,
        }),
        prepared.evaluation.retention ? baseline : EMPTY,
        ...jobs.map(jobEvents),
        defer(() => of<PipelineEvent>({ kind: 'run-end', baselineRetention, baselineFrozenHead, results, interrupted })),
      ).pipe(finalize(() => prepared.dispose()));
    }),
  );
}
