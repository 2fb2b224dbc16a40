// Progress on stderr: on a terminal one line redrawn in place (method, a bar, loss, images/s,
// ETA); otherwise plain lines at evaluations, method ends and every tenth of a method's steps.

import { EvalEvent, MethodResult, MethodStartEvent, StepEvent } from '../../common/events';

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function percent(value: number | undefined): string {
  return value === undefined ? '—' : `${value.toFixed(2)}%`;
}

export class Progress {
  private drawn = false;
  private methodStarted = 0;
  private startStep = 0;
  private speed = 0;

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
    const resumed = event.fromStep > 0 ? `, resuming at step ${event.fromStep}` : '';
    this.line(`[${event.method} seed ${event.seed}] ${event.trainableParams.toLocaleString('en-US')} trainable parameters, ${event.steps} steps${resumed}: ${event.description}`);
    if (event.memoryPlan) this.line(`[${event.method} seed ${event.seed}] ${event.memoryPlan}`);
  }

  step(event: StepEvent): void {
    this.speed = this.speed === 0 ? event.imagesPerSecond : 0.9 * this.speed + 0.1 * event.imagesPerSecond;
    const elapsed = (Date.now() - this.methodStarted) / 1000;
    const done = event.step - this.startStep;
    const eta = done > 0 ? (elapsed / done) * (event.steps - event.step) : NaN;
    const status = `[${event.method} seed ${event.seed}] step ${event.step}/${event.steps} loss ${event.loss.toFixed(4)} lr ${event.lr.toPrecision(3)} ${this.speed.toFixed(1)} img/s ETA ${duration(eta)}`;
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

  evaluation(event: EvalEvent, headline: number): void {
    const parts = [`[${event.method}${event.method === 'pretrained' ? '' : ` seed ${event.seed}`}] eval at step ${event.step}:`];
    if (event.newTaskAccuracy !== undefined) parts.push(`new task ${percent(event.newTaskAccuracy)}`);
    if (event.retention) parts.push(`retention@${headline} ${percent(event.retention[headline])}`);
    if (event.retentionUnplugged) parts.push(`unplugged ${percent(event.retentionUnplugged[headline])}`);
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
