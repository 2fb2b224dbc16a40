// Optimizers with PyTorch's update rules and explicit, saveable state (so a run can resume
// bit for bit). They update exactly the variables they are given — the surgery's trainable list.

import * as tf from '@tensorflow/tfjs-core';
import { ADAMW_UPDATE, SGD_UPDATE, provided } from '../../models/ops/backendKernels';

export interface OptimizerSpec {
  readonly optimizer: 'sgd' | 'adamw';
  readonly momentum?: number;
  readonly weightDecay?: number;
  readonly betas?: readonly [number, number];
  readonly eps?: number;
}

export interface Optimizer {
  /** Applies one update with the given learning rate; grads[i] belongs to variables[i]. */
  apply(grads: readonly tf.Tensor[], lr: number): void;
  /** Per-variable state tensors by name (for checkpoints), and the step count. */
  getState(): { step: number; tensors: Map<string, tf.Tensor> };
  setState(state: { step: number; tensors: ReadonlyMap<string, tf.Tensor> }): void;
  dispose(): void;
}

function slots(variables: readonly tf.Variable[]): tf.Variable[] {
  return variables.map((variable) => tf.tidy(() => tf.variable(tf.zerosLike(variable), false)));
}

function restore(name: string, targets: tf.Variable[], prefix: string, tensors: ReadonlyMap<string, tf.Tensor>): void {
  targets.forEach((slot, i) => {
    const value = tensors.get(`${prefix}.${i}`);
    if (!value) throw new Error(`${name} state: '${prefix}.${i}' is missing`);
    if (value.shape.join() !== slot.shape.join()) throw new Error(`${name} state: '${prefix}.${i}' has shape [${value.shape}], expected [${slot.shape}]`);
    slot.assign(value);
  });
}

/** SGD as torch.optim.SGD (dampening 0, not Nesterov): g += wd p; buf = m buf + g; p -= lr buf. */
export class Sgd implements Optimizer {
  private readonly buffers: tf.Variable[];
  private step = 0;

  constructor(
    private readonly variables: readonly tf.Variable[],
    private readonly momentum = 0,
    private readonly weightDecay = 0,
  ) {
    this.buffers = momentum > 0 ? slots(variables) : [];
  }

  apply(grads: readonly tf.Tensor[], lr: number): void {
    if (provided(SGD_UPDATE)) {
      // The backend's one-pass update: the same bits as the ops below.
      const attrs = { lr, momentum: this.momentum, weightDecay: this.weightDecay } as unknown as tf.NamedAttrMap;
      this.variables.forEach((variable, i) => {
        const inputs: tf.NamedTensorMap = this.momentum > 0 ? { variable, gradient: grads[i], buffer: this.buffers[i] } : { variable, gradient: grads[i] };
        const [updated, buffer] = tf.engine().runKernel(SGD_UPDATE, inputs, attrs) as tf.Tensor[];
        variable.assign(updated);
        if (this.momentum > 0) this.buffers[i].assign(buffer);
        tf.dispose([updated, buffer]);
      });
      this.step++;
      return;
    }
    // One tidy per variable: temporaries live for one variable's update, not for the whole model's.
    this.variables.forEach((variable, i) => {
      tf.tidy(() => {
        let gradient = grads[i];
        if (this.weightDecay !== 0) gradient = tf.add(gradient, tf.mul(variable, this.weightDecay));
        if (this.momentum > 0) {
          const buffer = this.buffers[i];
          buffer.assign(tf.add(tf.mul(buffer, this.momentum), gradient));
          gradient = buffer;
        }
        variable.assign(tf.sub(variable, tf.mul(gradient, lr)));
      });
    });
    this.step++;
  }

  getState() {
    return { step: this.step, tensors: new Map(this.buffers.map((b, i) => [`momentum.${i}`, b as tf.Tensor])) };
  }

  setState(state: { step: number; tensors: ReadonlyMap<string, tf.Tensor> }): void {
    restore('sgd', this.buffers, 'momentum', state.tensors);
    this.step = state.step;
  }

  dispose(): void {
    tf.dispose(this.buffers);
  }
}

/**
 * AdamW as torch.optim.AdamW: decoupled decay p *= 1 - lr wd, bias-corrected moments. `decays`
 * (one flag per variable, default all) says which variables are decayed, as a parameter group
 * without weight decay would; apply may override the weight decay for one step (a schedule).
 */
export class AdamW implements Optimizer {
  private readonly first: tf.Variable[];
  private readonly second: tf.Variable[];
  private step = 0;

  constructor(
    private readonly variables: readonly tf.Variable[],
    private readonly betas: readonly [number, number] = [0.9, 0.999],
    private readonly eps = 1e-8,
    private readonly weightDecay = 0.01,
    private readonly decays?: readonly boolean[],
  ) {
    if (decays && decays.length !== variables.length) throw new Error(`AdamW: ${decays.length} decay flags for ${variables.length} variables`);
    this.first = slots(variables);
    this.second = slots(variables);
  }

  apply(grads: readonly tf.Tensor[], lr: number, weightDecay = this.weightDecay): void {
    this.step++;
    const [beta1, beta2] = this.betas;
    const correction1 = 1 - beta1 ** this.step;
    const correction2 = 1 - beta2 ** this.step;
    if (provided(ADAMW_UPDATE)) {
      // The backend's one-pass update: the same bits as the ops below.
      this.variables.forEach((variable, i) => {
        const decay = this.decays && !this.decays[i] ? 0 : weightDecay;
        const attrs = { beta1, beta2, keep: decay !== 0 ? 1 - lr * decay : 1, sqrtCorrection2: Math.sqrt(correction2), eps: this.eps, stepSize: lr / correction1 } as unknown as tf.NamedAttrMap;
        const [updated, m, v] = tf.engine().runKernel(ADAMW_UPDATE, { variable, gradient: grads[i], m: this.first[i], v: this.second[i] }, attrs) as tf.Tensor[];
        this.first[i].assign(m);
        this.second[i].assign(v);
        variable.assign(updated);
        tf.dispose([updated, m, v]);
      });
      return;
    }
    this.variables.forEach((variable, i) => {
      tf.tidy(() => {
        const gradient = grads[i];
        const m = this.first[i];
        const v = this.second[i];
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(gradient, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(gradient), 1 - beta2)));
        const decay = this.decays && !this.decays[i] ? 0 : weightDecay;
        const decayed = decay !== 0 ? tf.mul(variable, 1 - lr * decay) : variable;
        const denominator = tf.add(tf.div(tf.sqrt(v), Math.sqrt(correction2)), this.eps);
        variable.assign(tf.sub(decayed, tf.mul(tf.div(m, denominator), lr / correction1)));
      });
    });
  }

  getState() {
    const tensors = new Map<string, tf.Tensor>();
    this.first.forEach((t, i) => tensors.set(`exp_avg.${i}`, t));
    this.second.forEach((t, i) => tensors.set(`exp_avg_sq.${i}`, t));
    return { step: this.step, tensors };
  }

  setState(state: { step: number; tensors: ReadonlyMap<string, tf.Tensor> }): void {
    restore('adamw', this.first, 'exp_avg', state.tensors);
    restore('adamw', this.second, 'exp_avg_sq', state.tensors);
    this.step = state.step;
  }

  dispose(): void {
    tf.dispose([...this.first, ...this.second]);
  }
}

export function createOptimizer(spec: OptimizerSpec, variables: readonly tf.Variable[]): Optimizer {
  if (spec.optimizer === 'sgd') return new Sgd(variables, spec.momentum ?? 0, spec.weightDecay ?? 0);
  return new AdamW(variables, spec.betas ?? [0.9, 0.999], spec.eps ?? 1e-8, spec.weightDecay ?? 0.01);
}

/** Scales gradients so their global L2 norm is at most maxNorm (torch clip_grad_norm_); returns the norm before. */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  const norm = tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))).dataSync()[0]);
  const scale = maxNorm / (norm + 1e-6);
  if (scale >= 1) return { grads: grads.map((g) => g.clone()), norm };
  return { grads: grads.map((g) => tf.mul(g, scale)), norm };
}
