// Learning-rate schedules, stepped once per optimizer step. 'cosine' is linear warmup from 0
// then half a cosine to 0 — the schedule of the paper's code (Hugging Face's
// get_cosine_schedule_with_warmup under a per-step LambdaLR): step s trains with
// lr * s / warmup during warmup, so the very first step has learning rate 0.

export type ScheduleName = 'cosine' | 'constant';

export interface ScheduleSpec {
  readonly schedule: ScheduleName;
  readonly lr: number;
  readonly warmupSteps: number;
  readonly steps: number;
}

export function learningRate(spec: ScheduleSpec, step: number): number {
  const { lr, warmupSteps, steps } = spec;
  if (step < warmupSteps) return (lr * step) / Math.max(1, warmupSteps);
  if (spec.schedule === 'constant') return lr;
  const progress = (step - warmupSteps) / Math.max(1, steps - warmupSteps);
  return lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
