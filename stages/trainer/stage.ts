// The trainer stage: consumes a batch stream, runs one optimizer step per batch, and emits the
// step's metrics. Whatever the afterStep hook returns (evaluations, checkpoints) runs before the
// next step, so nothing else touches the model while a step's follow-up runs; each batch is
// disposed (and so acknowledged to the bounded producer) as soon as its step is done, and a
// batch that arrived but never got its step (training ended by an error or a stop) is disposed
// when the stream ends (stepThroughBatches keeps this contract for every trainer).

import { Observable } from 'rxjs';
import { injectable } from 'tsyringe';
import { Batch } from '../dataset/batches';
import { StepMetrics, TrainJob, TrainingSession } from './session';
import { stepThroughBatches } from './stepThroughBatches';

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
    return stepThroughBatches(() => new TrainingSession(job), job.settings.steps, batches, hooks, (session, batch): TrainedStep => {
      const metrics = session.step(batch.images, batch.labels);
      return { kind: 'trained-step', ...metrics, epoch: batch.epoch };
    });
  }
}
