// Running a pipeline: prepare once (model, data, evaluation set-up), measure the pretrained
// baseline, then run each method x seed job through the job loop, and end with the run's
// results. Everything is a stream of PipelineEvents; the stages come in through the Stages
// object, so any of them can be replaced.
//
//   run-start → baseline evaluation → job 1 … job n → run-end
//   a job: restored from results.csv (finished before a resume), skipped (after a stop request),
//          or run by pipelines/fineTuneJob.ts in pipelines/loop/jobLoop.ts, continuing from its
//          checkpoint when one is there
//
// Reliability (pipelines/RELIABILITY.md): a stop request ends the running job at the next step
// boundary with a checkpoint and an 'interrupted' result, and the run ends early; a resumed run
// restores finished jobs and continues the interrupted one, giving an uninterrupted run's results.

import { EMPTY, Observable, catchError, concat, concatMap, defer, finalize, from, map, of, throwError } from 'rxjs';
import { BASELINE, EvalEvent, MethodResult, PipelineEvent, RunStartEvent } from '../common/events';
import { isOutOfMemory } from '../stages/trainer/session';
import { fineTuneJob } from './fineTuneJob';
import { Job, RunOptions, Stages, planJobs } from './job';
import { runJobLoop } from './loop/jobLoop';
import { Prepared, prepare } from './prepare';
import { ResumeState, jobFingerprint, jobKey, openJobCheckpoint, prepareResume } from './resume';
import { LoadedPipeline } from './spec';

/** What the run-end event reports, gathered as the run goes. */
class RunRecord {
  readonly results: MethodResult[] = [];
  baselineRetention?: number;
  baselineFrozenHead?: number;
  /** Set when a job was interrupted or left out because of a stop request. */
  interrupted = false;

  baseline(event: EvalEvent, headline: number): EvalEvent {
    this.baselineRetention = event.retention?.[headline];
    this.baselineFrozenHead = event.frozenHeadAccuracy;
    return event;
  }

  jobEvent(event: PipelineEvent): PipelineEvent {
    if (event.kind === 'method-end') {
      this.results.push(event.result);
      if (event.result.status === 'interrupted') this.interrupted = true;
    }
    return event;
  }
}

function runStart(loaded: LoadedPipeline, options: RunOptions, jobs: readonly Job[], prepared: Prepared): RunStartEvent {
  return {
    kind: 'run-start',
    run: loaded.spec.name,
    outDir: options.outDir,
    backend: options.backend ?? 'unknown',
    model: loaded.spec.model.checkpoint,
    jobs: jobs.map((job) => ({ method: job.method, seed: job.seed, steps: job.settings.steps })),
    knnK: prepared.evaluation.knn.k,
    knnHeadline: prepared.knnHeadline,
    ...(prepared.evaluation.linearProbe ? { linearProbe: true } : {}),
    resumed: options.resume === true,
    memoryPlan: prepared.evaluationPlan,
  };
}

/** The pretrained model's retention: restored by a resume, skipped after a stop request. */
function baselineEvaluation(stages: Stages, prepared: Prepared, options: RunOptions, resume: ResumeState | undefined): Observable<EvalEvent> {
  if (!prepared.evaluation.retention) return EMPTY;
  return defer(() => {
    if (resume?.baseline) return of(resume.baseline);
    if (options.stop?.requested) return EMPTY;
    const evaluated = stages.evaluator.evaluate(prepared.base, prepared.evaluation, { newTask: false, retention: true, unplugged: false, frozenHead: prepared.frozenHead });
    return from(evaluated).pipe(
      map((result): EvalEvent => ({ kind: 'eval', method: BASELINE, seed: 0, step: 0, ...result })),
      catchError((error: unknown) => {
        if (!isOutOfMemory(error)) return throwError(() => error);
        const detail = (error as Error).message.split('\n')[0];
        return throwError(() => new Error(`the pretrained model's evaluation: out of memory (evaluation batch ${prepared.evaluation.batchSize}): set evaluate.batchSize lower (${detail})`));
      }),
    );
  });
}

/** What every job of a run sees. */
interface RunContext {
  readonly stages: Stages;
  readonly loaded: LoadedPipeline;
  readonly options: RunOptions;
  readonly prepared: Prepared;
  readonly resume?: ResumeState;
  readonly record: RunRecord;
}

/** One job's events: replayed when it finished before a resume, none after a stop, else trained. */
function jobEvents(run: RunContext, job: Job): Observable<PipelineEvent> {
  const { stages, loaded, options, prepared, resume, record } = run;
  return defer(() => {
    const key = jobKey(job.method, job.seed);
    const done = resume?.finished.get(key);
    // Finished jobs are replayed even after a stop, so results.csv keeps their rows.
    if (done) return concat(from(resume?.evals.get(key) ?? []), of<PipelineEvent>({ kind: 'method-end', result: done, restored: true }));
    if (record.interrupted || options.stop?.requested) {
      record.interrupted = true;
      return EMPTY;
    }
    const checkpoint = resume?.checkpoints.get(key);
    return runJobLoop(() => {
      // Opened (and checked against this job) before the surgery, so a bad file costs nothing.
      const opened = checkpoint ? openJobCheckpoint(checkpoint.file, loaded.spec, job) : undefined;
      const start = { fingerprint: jobFingerprint(loaded.spec, job), opened, evals: checkpoint ? (resume?.evals.get(key) ?? []) : [] };
      return fineTuneJob(stages, prepared, job, options, start);
    });
  }).pipe(map((event) => record.jobEvent(event)));
}

/** The run as a stream of events (not yet reported: see pipelines/composer for the reporter). */
export function runPipeline(stages: Stages, loaded: LoadedPipeline, options: RunOptions): Observable<PipelineEvent> {
  const jobs = planJobs(loaded.spec, options);
  return defer(() => {
    // Checked before the model and data load, so a folder that cannot be resumed fails at once.
    const resume = options.resume ? prepareResume(options.outDir, loaded.spec, jobs) : undefined;
    return from(prepare(stages, loaded, options)).pipe(map((prepared) => ({ prepared, resume })));
  }).pipe(
    concatMap(({ prepared, resume }) => {
      const record = new RunRecord();
      const run: RunContext = { stages, loaded, options, prepared, resume, record };
      return concat(
        of<PipelineEvent>(runStart(loaded, options, jobs, prepared)),
        baselineEvaluation(stages, prepared, options, resume).pipe(map((event) => record.baseline(event, prepared.knnHeadline))),
        ...jobs.map((job) => jobEvents(run, job)),
        defer(() => of<PipelineEvent>({ kind: 'run-end', baselineRetention: record.baselineRetention, baselineFrozenHead: record.baselineFrozenHead, results: record.results, interrupted: record.interrupted })),
      ).pipe(finalize(() => prepared.dispose()));
    }),
  );
}
