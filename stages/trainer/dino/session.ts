// One DINO pretraining's training state and its step (main_dino.py train_one_epoch): the teacher
// sees the two global views, the student every view; the loss's gradient is clipped per
// parameter, the last layer's is dropped while it is frozen, AdamW steps with the scheduled
// learning rate and weight decay (none on biases, norms, class token and position embedding),
// then the teacher moves to the EMA m t + (1 - m) s and the centre to the EMA of the teacher's
// batch mean. The networks belong to the caller; the session owns its optimizers and centre.

import * as tf from '@tensorflow/tfjs-core';
import { EMA_UPDATE, provided } from '../../../models/ops/backendKernels';
import { AdamW } from '../optimizer';
import { ScheduleSpec, learningRate } from '../schedule';
import { DivergedError, StepMetrics } from '../session';
import { dinoLoss, koleoLoss, teacherDistribution, teacherEntropies, updatedCenter } from './loss';
import { DinoModels } from './models';
import { cosineSchedule, teacherMomentum, teacherTemperature } from './schedules';
import type { DinoSettings } from './settings';

export interface DinoTrainSettings extends ScheduleSpec {
  readonly batchSize: number;
  /** The batch stream's seed (data order and views). */
  readonly seed: number;
  readonly betas?: readonly [number, number];
  readonly eps?: number;
}

export interface DinoJob {
  readonly models: DinoModels;
  readonly dino: DinoSettings;
  readonly train: DinoTrainSettings;
}

export interface DinoStepMetrics extends StepMetrics {
  readonly weightDecay: number;
  readonly teacherTemperature: number;
  readonly teacherMomentum: number;
  /** Mean entropy (nats) of the teacher's centred, sharpened rows: near log K means a uniform collapse. */
  readonly teacherEntropy: number;
  /** Entropy of the teacher's batch-mean distribution: near 0 means every image lands on one prototype. */
  readonly teacherBatchEntropy: number;
}

/**
 * The decay groups: biases and 1-d tensors undecayed, as DINO's get_params_groups; also the class
 * token and position embedding, as issue 14 asks (DINO's own code decays those two, and a trained
 * last-layer gain, which vitpeft stores 1-d).
 */
export function decayed(name: string, variable: tf.Variable): boolean {
  return !(name.endsWith('.bias') || variable.rank <= 1 || name === 'cls_token' || name === 'pos_embed');
}

/** Scales each gradient to an L2 norm of at most maxNorm on its own (DINO's utils.clip_gradients). */
export function clipEachByNorm(grads: readonly tf.Tensor[], maxNorm: number): tf.Tensor[] {
  // Every norm in one read; sqrt(sum(x^2)) rather than tf.norm, whose |x|^2 is a Pow kernel
  // (scalar and slow on wasm).
  const normTensor = tf.tidy(() => tf.sqrt(tf.stack(grads.map((grad) => tf.sum(tf.square(grad))))));
  const norms = normTensor.dataSync();
  normTensor.dispose();
  return grads.map((grad, i) =>
    tf.tidy(() => {
      const scale = maxNorm / (norms[i] + 1e-6);
      return scale < 1 ? tf.mul(grad, scale) : grad.clone();
    }),
  );
}

export class DinoSession {
  /** Steps completed so far (the schedules' position). */
  completedSteps = 0;
  /** [1, K], the centre subtracted from the teacher's logits. */
  readonly center: tf.Variable;
  /** Every student variable but the last layer's. */
  readonly optimizer: AdamW;
  /** The last layer's own AdamW: a frozen layer is skipped as PyTorch skips a parameter without gradient. */
  readonly lastLayerOptimizer: AdamW;
  readonly names: readonly string[];
  readonly trainable: readonly tf.Variable[];
  private readonly lastLayerCount: number;

  constructor(readonly job: DinoJob) {
    const { models, dino, train } = job;
    const named = models.studentParameters();
    const last = new Set<tf.Variable>(models.studentHead.lastLayer);
    const body = named.filter(([, variable]) => !last.has(variable));
    const lastLayer = named.filter(([, variable]) => last.has(variable));
    // The last layer's variables go last, so trainable[i] and names[i] stay paired.
    const ordered = [...body, ...lastLayer];
    this.names = ordered.map(([name]) => name);
    this.trainable = ordered.map(([, variable]) => variable);
    this.lastLayerCount = lastLayer.length;
    const betas = train.betas ?? [0.9, 0.999];
    const eps = train.eps ?? 1e-8;
    const flags = (list: typeof named) => list.map(([name, variable]) => decayed(name, variable));
    this.optimizer = new AdamW(body.map(([, v]) => v), betas, eps, dino.weightDecay.start, flags(body));
    this.lastLayerOptimizer = new AdamW(lastLayer.map(([, v]) => v), betas, eps, dino.weightDecay.start, flags(lastLayer));
    this.center = tf.tidy(() => tf.variable(tf.zeros([1, dino.outDim]), false));
  }

  /** The schedules' values for the step after `completed` steps. */
  schedules(completed: number): { lr: number; weightDecay: number; teacherTemperature: number; teacherMomentum: number } {
    const { dino, train } = this.job;
    const span = dino.scheduleSteps ?? train.steps;
    return {
      lr: learningRate({ ...train, steps: span }, completed),
      weightDecay: cosineSchedule(dino.weightDecay.start, dino.weightDecay.end, completed, span),
      teacherTemperature: teacherTemperature(dino.teacherTemperature, completed),
      teacherMomentum: teacherMomentum(dino.teacherMomentum, completed, span),
    };
  }

  /** One step on a batch's views: globals [2B, S, S, 3], locals [N B, s, s, 3] (null without local crops). */
  step(globals: tf.Tensor4D, locals: tf.Tensor4D | null): DinoStepMetrics {
    const { models, dino } = this.job;
    const started = process.hrtime.bigint();
    const batch = globals.shape[0] / 2;
    const views = 2 + (locals ? locals.shape[0] / batch : 0);
    const scheduled = this.schedules(this.completedSteps);
    const teacherLogits = models.teacherLogits(globals);
    const { value, grads } = tf.variableGrads(() => {
      const { logits, globalFeatures } = models.studentForward(globals, locals);
      const loss = dinoLoss(logits, teacherLogits, this.center, { views, studentTemperature: dino.studentTemperature, teacherTemperature: scheduled.teacherTemperature });
      if (dino.koleo <= 0) return loss;
      // DINOv2: KoLeo on each global view's class tokens, summed over the two views.
      const [first, second] = tf.split(globalFeatures, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
      return tf.add(loss, tf.mul(dino.koleo, tf.add(koleoLoss(first), koleoLoss(second)))) as tf.Scalar;
    }, this.trainable as tf.Variable[]);
    const ordered = this.trainable.map((variable) => grads[variable.name]);
    const loss = value.dataSync()[0];
    value.dispose();
    let entropy: { rows: number; batch: number };
    try {
      if (ordered.some((grad) => !grad)) throw new Error('a DINO student variable received no gradient');
      if (!Number.isFinite(loss)) throw new DivergedError(this.completedSteps + 1, scheduled.lr, loss);
      const clipped = dino.clipGradNorm > 0 ? clipEachByNorm(ordered, dino.clipGradNorm) : ordered.map((grad) => grad.clone());
      try {
        const bodyCount = ordered.length - this.lastLayerCount;
        this.optimizer.apply(clipped.slice(0, bodyCount), scheduled.lr, scheduled.weightDecay);
        if (this.completedSteps >= dino.freezeLastLayerSteps) this.lastLayerOptimizer.apply(clipped.slice(bodyCount), scheduled.lr, scheduled.weightDecay);
      } finally {
        tf.dispose(clipped);
      }
      this.updateTeacher(scheduled.teacherMomentum);
      const probabilities = teacherDistribution(teacherLogits, this.center, scheduled.teacherTemperature);
      entropy = teacherEntropies(probabilities);
      probabilities.dispose();
      tf.tidy(() => this.center.assign(updatedCenter(this.center, teacherLogits, dino.centerMomentum)));
    } finally {
      tf.dispose([teacherLogits, ...Object.values(grads)]);
    }
    this.completedSteps++;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { step: this.completedSteps, loss, lr: scheduled.lr, imagesPerSecond: batch / seconds, weightDecay: scheduled.weightDecay, teacherTemperature: scheduled.teacherTemperature, teacherMomentum: scheduled.teacherMomentum, teacherEntropy: entropy.rows, teacherBatchEntropy: entropy.batch };
  }

  private updateTeacher(momentum: number): void {
    const student = this.job.models.studentParameters();
    const teacher = this.job.models.teacherParameters();
    if (provided(EMA_UPDATE)) {
      // The backend's one-pass update: the same bits as the ops below.
      const attrs = { momentum } as unknown as tf.NamedAttrMap;
      teacher.forEach(([, variable], i) => {
        const updated = tf.engine().runKernel(EMA_UPDATE, { average: variable, value: student[i][1] }, attrs) as tf.Tensor;
        variable.assign(updated);
        updated.dispose();
      });
      return;
    }
    tf.tidy(() => {
      teacher.forEach(([, variable], i) => variable.assign(tf.add(tf.mul(variable, momentum), tf.mul(student[i][1], 1 - momentum))));
    });
  }

  dispose(): void {
    this.optimizer.dispose();
    this.lastLayerOptimizer.dispose();
    this.center.dispose();
  }
}
