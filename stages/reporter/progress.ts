// Progress on stderr: on a terminal one line redrawn in place (method, a bar, loss, training
// images/s, time left); otherwise plain lines at evaluations, method ends and every tenth of a
// method's steps. The speed is the training steps' own (a moving average of each step's images/s,
// evaluations excluded); the time left is the remaining steps at the pace of this method's steps
// so far plus its remaining evaluations at the mean duration of its evaluations so far.

import { EvalEvent, MethodResult, MethodStartEvent, StepEvent } from '../../common/events';

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function percent(value: number | undefined): string {
  return value === undefined ? '—' : `${value.toFixed(2)}%`;
}

/** Evaluations still to come after `step`: every `every` steps, at the `at` steps, and after the last. */
export function remainingEvaluations(step: number, steps: number, every: number, at: readonly number[] = []): number {
  if (step >= steps) return 0;
  const periodic = every > 0 ? Math.floor(steps / every) - Math.floor(step / every) : 0;
  const listed = at.filter((s) => s > step && s < steps && !(every > 0 && s % every === 0)).length;
  return periodic + listed + (every > 0 && steps % every === 0 ? 0 : 1);
}

export class Progress {
  private drawn = false;
  private methodStarted = 0;
  private startStep = 0;
  private speed = 0;
  private evaluateEvery = 0;
  private evaluateAt: readonly number[] = [];
  private evaluationSeconds = 0;
  private evaluations = 0;

  constructor(
    private readonly interactive: boolean,
    private readonly write: (text: string) => void,
  ) {}

  line(text: string): void {
    this.clear();
    this.write(`${text}\n`);
  }

  methodStart(event: MethodStartEvent): void {
    this.methodStarted = Date.now();
    this.startStep = event.fromStep;
    this.speed = 0;
    this.evaluateEvery = event.evaluateEvery ?? 0;
    this.evaluateAt = event.evaluateAt ?? [];
    this.evaluationSeconds = 0;
    this.evaluations = 0;
    const resumed = event.fromStep > 0 ? `, resuming at step ${event.fromStep}` : '';
    this.line(`[${event.method} seed ${event.seed}] ${event.trainableParams.toLocaleString('en-US')} trainable parameters, ${event.steps} steps${resumed}: ${event.description}`);
    if (event.memoryPlan) this.line(`[${event.method} seed ${event.seed}] ${event.memoryPlan}`);
  }

  step(event: StepEvent): void {
    this.speed = this.speed === 0 ? event.imagesPerSecond : 0.9 * this.speed + 0.1 * event.imagesPerSecond;
    const status = `[${event.method} seed ${event.seed}] step ${event.step}/${event.steps} loss ${event.loss.toFixed(4)} lr ${event.lr.toPrecision(3)} train ${this.speed.toFixed(1)} img/s, left ${this.timeLeft(event)}`;
    if (this.interactive) {
      const width = 24;
      const filled = Math.round((width * event.step) / event.steps);
      this.write(`\r\x1b[2K${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${status}`);
      this.drawn = true;
    } else {
      const tenth = Math.max(1, Math.floor(event.steps / 10));
      if (event.step % tenth === 0 || event.step === event.steps) this.line(status);
    }
  }

  /** Remaining steps at this method's pace, plus its remaining evaluations at their mean duration. */
  private timeLeft(event: StepEvent): string {
    const done = event.step - this.startStep;
    const trainingSeconds = Math.max(0, (Date.now() - this.methodStarted) / 1000 - this.evaluationSeconds);
    if (done <= 0) return '?';
    const steps = (trainingSeconds / done) * (event.steps - event.step);
    const pending = remainingEvaluations(event.step, event.steps, this.evaluateEvery, this.evaluateAt);
    // Before the first evaluation its cost is unknown: say so rather than guess.
    if (pending > 0 && this.evaluations === 0) return `${duration(steps)} + ${pending} eval${pending > 1 ? 's' : ''}`;
    return duration(steps + pending * (this.evaluations > 0 ? this.evaluationSeconds / this.evaluations : 0));
  }

  evaluation(event: EvalEvent, headline: number): void {
    if (event.method !== 'pretrained') {
      this.evaluationSeconds += event.seconds;
      this.evaluations++;
    }
    const parts = [`[${event.method}${event.method === 'pretrained' ? '' : ` seed ${event.seed}`}] eval at step ${event.step}:`];
    if (event.newTaskAccuracy !== undefined) parts.push(`new task ${percent(event.newTaskAccuracy)}`);
    if (event.retention) parts.push(`retention@${headline} ${percent(event.retention[headline])}`);
    if (event.retentionUnplugged) parts.push(`unplugged ${percent(event.retentionUnplugged[headline])}`);
    if (event.retentionLinear !== undefined) parts.push(`linear probe ${percent(event.retentionLinear)}`);
    if (event.frozenHeadAccuracy !== undefined) parts.push(`frozen head ${percent(event.frozenHeadAccuracy)}`);
    parts.push(`(${event.seconds.toFixed(1)} s)`);
    this.line(parts.join(' '));
  }

  methodEnd(result: MethodResult, headline: number, restored = false): void {
    const what = result.status === 'ok' ? `new task ${percent(result.newTaskAccuracy)}, retention@${headline} ${percent(result.retentionAccuracy)}` : `${result.status}${result.note ? `: ${result.note}` : ''}`;
    if (restored) this.line(`[${result.method} seed ${result.seed}] finished before the resume: ${what}`);
    else if (result.status === 'interrupted') this.line(`[${result.method} seed ${result.seed}] ${result.note ?? 'interrupted'}`);
    else this.line(`[${result.method} seed ${result.seed}] done in ${duration(result.seconds)}: ${what}`);
  }

  done(): void {
    this.clear();
  }

  private clear(): void {
    if (this.drawn) {
      this.write('\r\x1b[2K');
      this.drawn = false;
    }
  }
}
