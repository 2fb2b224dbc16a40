// The one job loop, shared by fine-tuning (`vitpeft run`) and pretraining (`vitpeft pretrain`):
//
//   opening events (method-start, evaluations restored by a resume)
//   train: for each step from the checkpoint's step + 1 to the last
//     ├─ the step's own event
//     ├─ follow-ups due at this step, in order (evaluations, monitors)
//     ├─ one turn of the event loop (a SIGINT handler gets to set the stop flag)
//     └─ checkpoint when due; on a stop request a checkpoint, then the job ends 'interrupted'
//   finish (save the model, the result), then the checkpoint is removed
//   a non-finite loss ends the job 'diverged'; the job's resources are released however it ends
//
// What a job trains, evaluates and saves comes in as a LoopJob, so a new objective plugs in its
// own step (train), follow-ups and result without another copy of this loop.

import { EMPTY, Observable, catchError, concat, defer, finalize, map, of, throwError } from 'rxjs';
import type { StopSignal } from '../../common/stopSignal';
import { DivergedError, TrainingSession } from '../../stages/trainer/session';
import type { TrainedStep } from '../../stages/trainer/stage';
import type { JobCheckpoint } from './checkpoint';
import { yieldToEventLoop } from './yieldToEventLoop';

/** Work scheduled after some steps, before the checkpoint: an evaluation, a monitor. */
export interface FollowUp<E, S = TrainingSession> {
  due(step: number): boolean;
  run(step: TrainedStep, session: S): Observable<E>;
}

/** The hooks a job's training calls: the trainer stage's TrainHooks, for any session type. */
export interface LoopHooks<E, S> {
  onStart(session: S): void;
  afterStep(step: TrainedStep, session: S): Observable<E>;
}

export interface LoopJob<E, S = TrainingSession> {
  /** The step count the job trains to (counting resumed steps). */
  readonly steps: number;
  /** Events before the first step. */
  readonly opening: Observable<E>;
  /** The steps themselves: one TrainedStep per step, each step's hooks run before the next. */
  train(hooks: LoopHooks<E, S>): Observable<TrainedStep | E>;
  stepEvent(step: TrainedStep): E;
  readonly followUps: ReadonlyArray<FollowUp<E, S>>;
  readonly checkpoint: JobCheckpoint<E, S>;
  readonly stop?: StopSignal;
  /** After the last step: save what was trained, emit the result. */
  finish(): Observable<E>;
  /** The result of a job stopped after `step` steps (its checkpoint written). */
  interrupted(step: number): E;
  /** The result of a job whose loss became non-finite. */
  diverged(error: DivergedError): E;
  dispose(): void;
}

/** A job ended by a stop request after `step` completed steps. */
class JobInterrupted extends Error {
  constructor(readonly step: number) {
    super(`interrupted after step ${step}`);
    this.name = 'JobInterrupted';
  }
}

/** Runs the job made by `create` (called on subscription) as a stream of its events. */
export function runJobLoop<E, S = TrainingSession>(create: () => LoopJob<E, S>): Observable<E> {
  return defer(() => {
    const job = create();
    const { checkpoint } = job;
    const afterStep = (trained: TrainedStep, session: S): Observable<E> => {
      if (trained.step <= checkpoint.fromStep) {
        throw new Error(`the trainer trained step ${trained.step} but the job resumes after step ${checkpoint.fromStep}; a trainer must call onStart before its first step`);
      }
      const last = trained.step >= job.steps;
      const stopping = !last && job.stop?.requested === true;
      return concat(
        ...job.followUps.map((followUp) => (followUp.due(trained.step) ? defer(() => followUp.run(trained, session)) : EMPTY)),
        yieldToEventLoop(),
        // After the follow-ups, so a checkpoint at an evaluation step carries that evaluation.
        defer(() => {
          if (!stopping && (last || !checkpoint.due(trained.step))) return EMPTY;
          const saved = of(checkpoint.save(trained.step, session));
          return stopping ? concat(saved, throwError(() => new JobInterrupted(trained.step))) : saved;
        }),
      );
    };
    const training = job.train({ onStart: (session) => checkpoint.restore(session), afterStep }).pipe(
      map((event) => (isTrainedStep(event) ? job.stepEvent(event) : event)),
    );
    const removeCheckpoint = defer(() => {
      checkpoint.remove();
      return EMPTY;
    });
    return concat(job.opening, training, defer(() => job.finish()), removeCheckpoint).pipe(
      catchError((error: unknown) => {
        if (error instanceof JobInterrupted) return of(job.interrupted(error.step));
        if (error instanceof DivergedError) return concat(of(job.diverged(error)), removeCheckpoint);
        return throwError(() => error);
      }),
      finalize(() => {
        checkpoint.close();
        job.dispose();
      }),
    );
  });
}

function isTrainedStep(event: unknown): event is TrainedStep {
  return typeof event === 'object' && event !== null && (event as { kind?: unknown }).kind === 'trained-step';
}
