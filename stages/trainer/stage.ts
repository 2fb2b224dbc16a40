// The trainer stage: consumes a batch stream, runs one optimizer step per batch, and emits the
// step's metrics. Whatever the afterStep hook returns (evaluations, checkpoints) runs before the
// next step, so nothing else touches the model while a step's follow-up runs; each batch is
// disposed (and so acknowledged to the bounded producer) as soon as its step is done, and a
// batch that arrived but never got its step (training ended by an error or a stop) is disposed
// when the stream ends.

import { EMPTY, Observable, concat, concatMap, defer, finalize, of, take, tap } from 'rxjs';
import { injectable } from 'tsyringe';
import { Batch } from '../dataset/batches';
import { StepMetrics, TrainJob, TrainingSession } from './session';

export interface TrainedStep extends StepMetrics {
  readonly kind: 'trained-step';
  readonly epoch: number;
}

export interface TrainHooks<T> {
  /** Called once before the first step (restore a checkpoint into the session here). */
  onStart?(session: TrainingSession): void;
  /** Runs after each step, before the next; its values join the output stream. */
  afterStep?(step: TrainedStep, session: TrainingSession): Observable<T>;
}

export interface TrainerStage {
  /** Trains job.model until job.settings.steps steps are completed (counting resumed ones). */
  train<T>(job: TrainJob, batches: Observable<Batch>, hooks?: TrainHooks<T>): Observable<TrainedStep | T>;
}

@injectable()
export class DefaultTrainerStage implements TrainerStage {
  train<T>(job: TrainJob, batches: Observable<Batch>, hooks: TrainHooks<T> = {}): Observable<TrainedStep | T> {
    return defer(() => {
      const session = new TrainingSession(job);
      hooks.onStart?.(session);
      const remaining = job.settings.steps - session.completedSteps;
      if (remaining <= 0) {
        session.dispose();
        return EMPTY;
      }
      // Batches received but not yet stepped on (concatMap buffers them while a follow-up runs).
      const waiting = new Set<Batch>();
      return batches.pipe(
        take(remaining),
        tap((batch) => waiting.add(batch)),
        concatMap((batch) => {
          waiting.delete(batch);
          let metrics: StepMetrics;
          try {
            metrics = session.step(batch.images, batch.labels);
          } finally {
            batch.dispose();
          }
          const trained: TrainedStep = { kind: 'trained-step', ...metrics, epoch: batch.epoch };
          return concat(of(trained), hooks.afterStep ? defer(() => hooks.afterStep!(trained, session)) : EMPTY);
        }),
        finalize(() => {
          for (const batch of waiting) batch.dispose();
          waiting.clear();
          session.dispose();
        }),
      );
    });
  }
}
