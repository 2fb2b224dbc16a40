// DINO training over a batch stream, with the trainer stage's contract (stepThroughBatches): each
// batch cut into its multi-crop views for one DINO step.

import * as tf from '@tensorflow/tfjs-core';
import { Observable } from 'rxjs';
import type { Batch } from '../../dataset/batches';
import type { TrainedStep } from '../stage';
import { stepThroughBatches } from '../stepThroughBatches';
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
  return stepThroughBatches(() => new DinoSession(job), job.train.steps, batches, hooks, (session, batch): DinoTrainedStep => {
    const views = crops.cropBatch({ pixels: batch.images.dataSync() as Float32Array, shape: batch.images.shape, indices: batch.indices, epoch: batch.epoch });
    const globals = tf.tensor4d(views.globals, [2 * views.batch, views.globalSize, views.globalSize, 3]);
    const locals = views.locals.length > 0 ? tf.tensor4d(views.locals, [views.locals.length / (views.localSize * views.localSize * 3), views.localSize, views.localSize, 3]) : null;
    let metrics: DinoStepMetrics;
    try {
      metrics = session.step(globals, locals);
    } finally {
      tf.dispose([globals, ...(locals ? [locals] : [])]);
    }
    const { weightDecay, teacherTemperature, teacherMomentum, teacherEntropy, teacherBatchEntropy } = metrics;
    return { kind: 'trained-step', step: metrics.step, loss: metrics.loss, lr: metrics.lr, imagesPerSecond: metrics.imagesPerSecond, epoch: batch.epoch, dino: { weightDecay, teacherTemperature, teacherMomentum, teacherEntropy, teacherBatchEntropy } };
  });
}
