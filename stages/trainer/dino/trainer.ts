// The DINO training loop over a batch stream, shaped like the trainer stage: one session, the
// caller's onStart (a checkpoint restored) before the first step, each batch cut into its
// multi-crop views and disposed once its step is done, the afterStep hook's work run before the
// next step, and whatever batch arrived but never got its step disposed when the stream ends.

import * as tf from '@tensorflow/tfjs-core';
import { EMPTY, Observable, concat, concatMap, defer, finalize, of, take, tap } from 'rxjs';
import type { Batch } from '../../dataset/batches';
import type { TrainedStep } from '../stage';
import { MultiCrop } from './multiCrop';
import { DinoJob, DinoSession, DinoStepMetrics } from './session';

export interface DinoTrainedStep extends TrainedStep {
  readonly dino: Omit<DinoStepMetrics, keyof TrainedStep | 'gradNorm'>;
}

export interface DinoHooks<T> {
  onStart(session: DinoSession): void;
  afterStep(step: DinoTrainedStep, session: DinoSession): Observable<T>;
}

/** Trains until job.train.steps steps are completed (counting restored ones); batches hold images with values k/255. */
export function trainDino<T>(job: DinoJob, crops: MultiCrop, batches: Observable<Batch>, hooks: DinoHooks<T>): Observable<DinoTrainedStep | T> {
  return defer(() => {
    const session = new DinoSession(job);
    try {
      hooks.onStart(session);
    } catch (error) {
      session.dispose();
      throw error;
    }
    const remaining = job.train.steps - session.completedSteps;
    if (remaining <= 0) {
      session.dispose();
      return EMPTY;
    }
    const waiting = new Set<Batch>();
    return batches.pipe(
      take(remaining),
      tap((batch) => waiting.add(batch)),
      concatMap((batch) => {
        waiting.delete(batch);
        let metrics: DinoStepMetrics;
        try {
          const views = crops.cropBatch({ pixels: batch.images.dataSync() as Float32Array, shape: batch.images.shape, indices: batch.indices, epoch: batch.epoch });
          const globals = tf.tensor4d(views.globals, [2 * views.batch, views.globalSize, views.globalSize, 3]);
          const locals = views.locals.length > 0 ? tf.tensor4d(views.locals, [views.locals.length / (views.localSize * views.localSize * 3), views.localSize, views.localSize, 3]) : null;
          try {
            metrics = session.step(globals, locals);
          } finally {
            tf.dispose([globals, ...(locals ? [locals] : [])]);
          }
        } finally {
          batch.dispose();
        }
        const { weightDecay, teacherTemperature, teacherMomentum, teacherEntropy, teacherBatchEntropy } = metrics;
        const trained: DinoTrainedStep = { kind: 'trained-step', step: metrics.step, loss: metrics.loss, lr: metrics.lr, imagesPerSecond: metrics.imagesPerSecond, epoch: batch.epoch, dino: { weightDecay, teacherTemperature, teacherMomentum, teacherEntropy, teacherBatchEntropy } };
        return concat(of(trained), defer(() => hooks.afterStep(trained, session)));
      }),
      finalize(() => {
        for (const batch of waiting) batch.dispose();
        waiting.clear();
        session.dispose();
      }),
    );
  });
}
