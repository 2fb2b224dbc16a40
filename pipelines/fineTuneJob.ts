// One fine-tuning job (a method and a seed) as the job loop runs it: the surgery on a copy of the
// base model, training by the trainer stage on the seeded batch stream, evaluations on the
// pipeline's schedule, a training-state checkpoint with the job's progress, and at the end the
// trained model saved and one results row.

import * as fs from 'fs';
import * as path from 'path';
import { EMPTY, Observable, catchError, concat, defer, from, map, throwError } from 'rxjs';
import { EvalEvent, MethodResult, PipelineEvent, StepEvent } from '../common/events';
import { saveVit } from '../models/checkpoint/vitCheckpoint';
import { FrozenPrefixCache } from '../stages/evaluator/frozenPrefixCache';
import type { EvaluationData, EvaluationResult } from '../stages/evaluator/stage';
import { saveAdapters } from '../stages/surgery/loraFile';
import type { SurgeryResult } from '../stages/surgery/applySurgery';
import { OutOfMemoryError, TrainingSession, isOutOfMemory } from '../stages/trainer/session';
import type { TrainedStep } from '../stages/trainer/stage';
import type { TrainingStateFile } from '../stages/trainer/trainingState';
import type { Job, RunOptions, Stages } from './job';
import { FollowUp, LoopHooks, LoopJob } from './loop/jobLoop';
import { trainingStateCheckpoint } from './loop/checkpoint';
import { evaluationSchedule } from './loop/schedule';
import type { Prepared } from './prepare';
import { JobProgress, checkpointPath } from './resume';
import { MemoryPlan, jobMemoryPlan, memoryLimit } from './memoryPlan';

/** Where a job starts from: fresh, or a checkpoint of an interrupted run. */
export interface JobStart {
  readonly fingerprint: string;
  /** The opened checkpoint to continue from (the job closes it). */
  readonly opened?: { readonly state: TrainingStateFile; readonly progress: JobProgress };
  /** Evaluations recorded before the checkpoint (re-emitted so plots see them, not re-recorded). */
  readonly evals: readonly EvalEvent[];
}

/** The latest evaluation and the best new-task accuracy so far: what the results row reports. */
class EvaluationRecord {
  constructor(
    public last: EvaluationResult | undefined,
    public best: number | undefined,
  ) {}

  add(result: EvaluationResult): void {
    this.last = result;
    if (result.newTaskAccuracy !== undefined) this.best = Math.max(this.best ?? -Infinity, result.newTaskAccuracy);
  }

  /** A results row's accuracies; retention at the table's k. */
  accuracies(headline: number): Pick<MethodResult, 'newTaskAccuracy' | 'newTaskBest' | 'retentionAccuracy' | 'retentionUnplugged' | 'retentionLinear' | 'frozenHeadAccuracy' | 'meanAccuracy'> {
    const { last, best } = this;
    const retention = last?.retention?.[headline];
    return {
      newTaskAccuracy: last?.newTaskAccuracy,
      newTaskBest: best,
      retentionAccuracy: retention,
      retentionUnplugged: last?.retentionUnplugged?.[headline],
      ...(last?.retentionLinear === undefined ? {} : { retentionLinear: last.retentionLinear }),
      frozenHeadAccuracy: last?.frozenHeadAccuracy,
      meanAccuracy: last?.newTaskAccuracy !== undefined && retention !== undefined ? (last.newTaskAccuracy + retention) / 2 : undefined,
    };
  }
}

/** The job's name and what is left to continue from, in front of an out-of-memory error. */
function outOfMemory(job: Job, options: RunOptions, what: string): Error {
  const file = checkpointPath(options.outDir, job);
  const kept = fs.existsSync(file) ? `; its last checkpoint is kept (${file}): after the change, vitpeft run --resume ${options.outDir} continues from it` : '';
  return new Error(`${job.method} seed ${job.seed}: ${what}${kept}`);
}

/** A job's evaluations: on the pipeline's schedule, recorded for the results row, frozen blocks' activations kept between them. */
class JobEvaluations {
  readonly frozenPrefix: FrozenPrefixCache;
  /** The pipeline's evaluation set-up at the batch size of this job's memory plan. */
  private readonly evaluation: EvaluationData;

  constructor(
    private readonly stages: Stages,
    private readonly prepared: Prepared,
    private readonly job: Job,
    private readonly surgery: SurgeryResult,
    readonly record: EvaluationRecord,
    private readonly options: RunOptions,
    batchSize: number,
  ) {
    this.frozenPrefix = new FrozenPrefixCache(surgery.model, surgery.firstTrainableBlock, prepared.frozenPrefixBytes);
    this.evaluation = { ...prepared.evaluation, batchSize };
  }

  /** The evaluation after `step` steps (0: before the first). */
  after(step: number): Observable<EvalEvent> {
    const { stages, prepared, job, surgery, record, frozenPrefix, evaluation } = this;
    // Retention with adapters removed / new blocks bypassed: measured once, at the end of training.
    const unplugged = (surgery.spec.method === 'lora' || surgery.spec.method === 'block') && step === job.settings.steps;
    return from(stages.evaluator.evaluate(surgery.model, evaluation, { newTask: true, retention: true, unplugged, frozenHead: prepared.frozenHead, frozenPrefix })).pipe(
      map((result): EvalEvent => {
        record.add(result);
        return { kind: 'eval', method: job.method, seed: job.seed, step, ...result };
      }),
      catchError((error: unknown) => {
        if (!isOutOfMemory(error)) return throwError(() => error);
        const what = `out of memory in the evaluation after step ${step} (evaluation batch ${evaluation.batchSize}): set evaluate.batchSize lower (${(error as Error).message.split('\n')[0]})`;
        return throwError(() => outOfMemory(job, this.options, what));
      }),
    );
  }

  followUp(): FollowUp<PipelineEvent> {
    const { every, at } = this.prepared.schedule;
    return { due: evaluationSchedule(every, this.job.settings.steps, at), run: (trained) => this.after(trained.step) };
  }
}

async function saveTrainedModel(surgery: SurgeryResult, job: Job, outDir: string): Promise<void> {
  const folder = path.join(outDir, 'models');
  if (surgery.spec.method === 'lora') await saveAdapters(surgery.model, path.join(folder, `${job.method}-seed${job.seed}.adapters.safetensors`));
  else await saveVit(surgery.model, path.join(folder, `${job.method}-seed${job.seed}.safetensors`), { 'vitpeft.method': job.method });
}

function stepEvent(job: Job, trained: TrainedStep): StepEvent {
  const { step, epoch, loss, lr, imagesPerSecond } = trained;
  return { kind: 'step', method: job.method, seed: job.seed, step, steps: job.settings.steps, epoch, loss, lr, imagesPerSecond };
}

/** The trainer stage on the job's seeded batch stream, from the step it resumes after. */
function trainSteps(stages: Stages, prepared: Prepared, job: Job, surgery: SurgeryResult, fromStep: number, hooks: LoopHooks<PipelineEvent, TrainingSession>, microBatch: number): Observable<TrainedStep | PipelineEvent> {
  const { settings } = job;
  const batches = stages.dataset.batches(prepared.train, {
    batchSize: settings.batchSize,
    shuffle: true,
    seed: settings.seed,
    epochs: Infinity,
    dropLast: prepared.train.size >= settings.batchSize,
    transform: prepared.trainTransform,
    startStep: fromStep,
  });
  const trainJob = { model: surgery.model, trainable: surgery.trainable, firstTrainableBlock: surgery.firstTrainableBlock, numClasses: prepared.numClasses, settings, microBatch };
  return stages.trainer.train(trainJob, batches, hooks);
}

export function fineTuneJob(stages: Stages, prepared: Prepared, job: Job, options: RunOptions, start: JobStart): LoopJob<PipelineEvent> {
  const started = Date.now();
  const { settings } = job;
  let surgery: SurgeryResult;
  let plan: MemoryPlan;
  try {
    surgery = stages.surgery.apply(prepared.base, job.entry, { classes: prepared.numClasses, seed: job.seed });
    try {
      const cacheBytes = surgery.firstTrainableBlock > 0 ? prepared.frozenPrefixBytes : 0;
      plan = jobMemoryPlan(job, surgery, memoryLimit(), { ...prepared.evaluationBatch, cacheBytes });
    } catch (error) {
      surgery.model.dispose();
      throw error;
    }
  } catch (error) {
    start.opened?.state.close();
    throw error;
  }
  const { model } = surgery;
  const fromStep = start.opened?.state.header.step ?? 0;
  const record = new EvaluationRecord(start.opened?.progress.last, start.opened?.progress.best);
  const evaluations = new JobEvaluations(stages, prepared, job, surgery, record, options, plan.evaluation?.batchSize ?? prepared.evaluation.batchSize);
  const { every: evaluateEvery, at: evaluateAt } = prepared.schedule;
  const seconds = () => (start.opened?.progress.seconds ?? 0) + (Date.now() - started) / 1000;
  const result = (status: MethodResult['status'], steps: number, note?: string): MethodResult => ({
    method: job.method,
    seed: job.seed,
    trainableParams: surgery.trainableCount,
    steps,
    status,
    ...record.accuracies(prepared.knnHeadline),
    seconds: seconds(),
    note,
  });
  const end = (value: MethodResult): PipelineEvent => ({ kind: 'method-end', result: value });
  return {
    steps: settings.steps,
    opening: concat(
      from<PipelineEvent[]>([
        { kind: 'method-start', method: job.method, seed: job.seed, trainableParams: surgery.trainableCount, description: surgery.description, steps: settings.steps, fromStep, evaluateEvery, evaluateAt, memoryPlan: plan.summary },
        ...start.evals,
      ]),
      fromStep === 0 && evaluateAt.includes(0) ? defer(() => evaluations.after(0)) : EMPTY,
    ),
    train: (hooks) =>
      trainSteps(stages, prepared, job, surgery, fromStep, hooks, plan.microBatch).pipe(
        catchError((error: unknown) => throwError(() => (error instanceof OutOfMemoryError ? outOfMemory(job, options, error.message) : error))),
      ),
    stepEvent: (trained) => stepEvent(job, trained),
    followUps: [evaluations.followUp()],
    checkpoint: trainingStateCheckpoint<PipelineEvent>({
      file: checkpointPath(options.outDir, job),
      every: settings.checkpointEvery,
      opened: start.opened?.state,
      names: surgery.trainableNames,
      progress: (): JobProgress => ({ fingerprint: start.fingerprint, method: job.method, seed: job.seed, best: record.best, last: record.last, seconds: seconds() }),
      event: (step, file) => ({ kind: 'checkpoint', method: job.method, seed: job.seed, step, file }),
    }),
    stop: options.stop,
    finish: (): Observable<PipelineEvent> =>
      defer(async () => {
        if (options.saveModels !== false) await saveTrainedModel(surgery, job, options.outDir);
        return end(result('ok', settings.steps));
      }),
    interrupted: (step) => end(result('interrupted', step, `interrupted after step ${step} of ${settings.steps}; continue with: vitpeft run --resume ${options.outDir}`)),
    diverged: (error) =>
      end({ method: job.method, seed: job.seed, trainableParams: surgery.trainableCount, steps: error.step, status: 'diverged', note: error.message, seconds: seconds() }),
    dispose: () => {
      evaluations.frozenPrefix.dispose();
      model.dispose();
    },
  };
}
