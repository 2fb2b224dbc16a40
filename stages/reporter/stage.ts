// The reporter: an operator on the pipeline's event stream. Steps go to metrics.csv and
// evaluations to evals.csv as they arrive (whole rows, so an interrupted run keeps them);
// results.csv is rewritten atomically after every finished method and holds no timings, so the
// same run gives the same file (wall times go to timings.csv); at the end it prints the table,
// draws the trade-off and forgetting-curve plots and writes report.html (report/). A resumed
// run appends to the CSVs that the runner has trimmed to its checkpoints; events marked restored
// update the table and plots but are not recorded again. An interrupted method keeps a results
// row with status 'interrupted' (its values are those of its last evaluation) until a resume
// replaces it. Progress goes to stderr: a bar on a terminal, plain lines otherwise.

import * as fs from 'fs';
import * as path from 'path';
import { stringify } from 'csv-stringify/sync';
import { MonoTypeOperatorFunction, Observable, concatMap, defer, finalize, of } from 'rxjs';
import { inject, injectable } from 'tsyringe';
import { writeFileAtomic } from '../../common/atomicWrite';
import { TOKENS } from '../../di/tokens';
import { BASELINE, EvalEvent, MethodResult, PipelineEvent, RunEndEvent, RunStartEvent, StepEvent } from '../../common/events';
import { CsvLog, CsvValue } from './csvLog';
import { CurvePoint, forgettingSpec, renderSvg, tradeoffSpec } from './plots';
import { Progress } from './progress';
import { formatTable, stat, summarize } from './table';
import { LINEAR_PROBE_COLUMN, RESULT_COLUMNS, resultColumns } from './resultColumns';
import { writeReport } from './report/writeReport';

export { RESULT_COLUMNS };

export interface ReporterOptions {
  /** The run's output folder (out/<run>). */
  readonly outDir: string;
  /** Draw a live progress bar (default: when stderr is a terminal). */
  readonly interactive?: boolean;
  /** Where the table goes (default stdout) and progress (default stderr). */
  readonly out?: (text: string) => void;
  readonly err?: (text: string) => void;
  /** Skip the SVG plots. */
  readonly plots?: boolean;
  /** Skip report.html (default: written at the end of the run). */
  readonly report?: boolean;
}

export interface ReporterStage {
  record(): MonoTypeOperatorFunction<PipelineEvent>;
}

const METRIC_COLUMNS = ['run', 'method', 'seed', 'step', 'epoch', 'loss', 'lr', 'images_per_second'] as const;

export function resultRow(run: string, r: MethodResult): Record<(typeof RESULT_COLUMNS)[number] | typeof LINEAR_PROBE_COLUMN, CsvValue> {
  return {
    run,
    method: r.method,
    seed: r.seed,
    trainable_params: r.trainableParams,
    new_task_accuracy: r.newTaskAccuracy,
    new_task_best: r.newTaskBest,
    retention_accuracy: r.retentionAccuracy,
    retention_unplugged: r.retentionUnplugged,
    retention_linear: r.retentionLinear,
    frozen_head_accuracy: r.frozenHeadAccuracy,
    mean_accuracy: r.meanAccuracy,
    steps: r.steps,
    status: r.status,
    note: r.note,
  };
}

function round(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Number(value.toPrecision(7));
}

/**
 * results.csv as text: the baseline row, then every finished method in order; with a
 * retention_linear column when any row has linear-probe retention.
 */
export function resultsCsv(run: string, baseline: { retention?: number; frozenHead?: number; linear?: number }, results: readonly MethodResult[]): string {
  const columns = resultColumns(baseline.linear !== undefined || results.some((r) => r.retentionLinear !== undefined)) as readonly (keyof ReturnType<typeof resultRow>)[];
  const rows: CsvValue[][] = [columns as unknown as string[]];
  const baselineRow: MethodResult = {
    method: BASELINE,
    seed: 0,
    trainableParams: 0,
    steps: 0,
    status: 'ok',
    retentionAccuracy: baseline.retention,
    retentionLinear: baseline.linear,
    frozenHeadAccuracy: baseline.frozenHead,
    seconds: 0,
  };
  for (const result of [baselineRow, ...results]) {
    const row = resultRow(run, result);
    rows.push(columns.map((column) => (typeof row[column] === 'number' ? round(row[column] as number) : row[column]) ?? null));
  }
  return stringify(rows as (string | number | boolean | null)[][]);
}

@injectable()
export class DefaultReporter implements ReporterStage {
  constructor(@inject(TOKENS.reporterOptions) private readonly options: ReporterOptions) {}

  record(): MonoTypeOperatorFunction<PipelineEvent> {
    return (events: Observable<PipelineEvent>) =>
      defer(() => {
        const { outDir } = this.options;
        const out = this.options.out ?? ((text: string) => process.stdout.write(text));
        const err = this.options.err ?? ((text: string) => process.stderr.write(text));
        const progress = new Progress(this.options.interactive ?? process.stderr.isTTY === true, err);
        fs.mkdirSync(outDir, { recursive: true });
        let start: RunStartEvent | undefined;
        let metrics: CsvLog<Record<string, CsvValue>> | undefined;
        let evals: CsvLog<Record<string, CsvValue>> | undefined;
        let timings: CsvLog<Record<string, CsvValue>> | undefined;
        const results: MethodResult[] = [];
        const baseline: { retention?: number; frozenHead?: number; linear?: number } = {};
        const curves: CurvePoint[] = [];

        const writeResults = () => writeFileAtomic(path.join(outDir, 'results.csv'), resultsCsv(start?.run ?? '', baseline, results));
        const headline = () => start?.knnHeadline ?? 20;

        const onStart = (event: RunStartEvent) => {
          start = event;
          metrics = new CsvLog(path.join(outDir, 'metrics.csv'), METRIC_COLUMNS);
          const retentionColumns = event.knnK.flatMap((k) => [`retention_k${k}`]);
          const unpluggedColumns = event.knnK.map((k) => `retention_unplugged_k${k}`);
          const linearColumns = event.linearProbe ? [LINEAR_PROBE_COLUMN] : [];
          evals = new CsvLog(path.join(outDir, 'evals.csv'), ['run', 'method', 'seed', 'step', 'new_task_accuracy', ...retentionColumns, ...unpluggedColumns, ...linearColumns, 'frozen_head_accuracy', 'seconds']);
          timings = new CsvLog(path.join(outDir, 'timings.csv'), ['run', 'method', 'seed', 'steps', 'status', 'seconds']);
          progress.line(event.resumed ? `vitpeft: resuming run '${event.run}' in ${outDir}` : `vitpeft: run '${event.run}' -> ${outDir}`);
          if (event.memoryPlan) progress.line(`vitpeft: ${event.memoryPlan}`);
        };
        const onStep = (event: StepEvent) => {
          metrics?.append({
            run: start?.run,
            method: event.method,
            seed: event.seed,
            step: event.step,
            epoch: event.epoch,
            loss: event.loss,
            lr: event.lr,
            images_per_second: event.imagesPerSecond,
          });
          progress.step(event);
        };
        const onEval = (event: EvalEvent) => {
          const row: Record<string, CsvValue> = {
            run: start?.run,
            method: event.method,
            seed: event.seed,
            step: event.step,
            new_task_accuracy: event.newTaskAccuracy,
            frozen_head_accuracy: event.frozenHeadAccuracy,
            seconds: event.seconds,
          };
          if (start?.linearProbe) row[LINEAR_PROBE_COLUMN] = event.retentionLinear;
          for (const [k, value] of Object.entries(event.retention ?? {})) row[`retention_k${k}`] = value;
          for (const [k, value] of Object.entries(event.retentionUnplugged ?? {})) row[`retention_unplugged_k${k}`] = value;
          if (!event.restored) evals?.append(row);
          const retention = event.retention?.[headline()];
          if (event.method === BASELINE) {
            baseline.retention = retention;
            baseline.frozenHead = event.frozenHeadAccuracy;
            baseline.linear = event.retentionLinear;
          } else if (retention !== undefined) {
            curves.push({ method: event.method, step: event.step, retentionAccuracy: retention, newTaskAccuracy: event.newTaskAccuracy });
          }
          if (!event.restored) progress.evaluation(event, headline());
        };

        const onEnd = (event: RunEndEvent): Observable<PipelineEvent> =>
          defer(async () => {
            progress.done();
            writeResults();
            const rows = summarize(results);
            if (results.some((r) => results.some((o) => o.method === r.method && o.seed !== r.seed))) {
              // Linear-probe retention's pair of columns only in runs that measure it.
              const linear = rows.some((row) => row.retentionLinear);
              const summaryRows = rows.map((row) => [row.method, row.seeds, row.trainableParams, row.newTask?.mean, row.newTask?.std, row.retention?.mean, row.retention?.std, ...(linear ? [row.retentionLinear?.mean, row.retentionLinear?.std] : []), row.mean?.mean, row.mean?.std, row.status]);
              writeFileAtomic(
                path.join(outDir, 'summary.csv'),
                stringify([
                  ['method', 'seeds', 'trainable_params', 'new_task_mean', 'new_task_std', 'retention_mean', 'retention_std', ...(linear ? ['retention_linear_mean', 'retention_linear_std'] : []), 'mean_accuracy_mean', 'mean_accuracy_std', 'status'],
                  ...summaryRows.map((r) => r.map((v) => (typeof v === 'number' ? round(v) : v) ?? null)),
                ]),
              );
            }
            out(
              formatTable({
                title: `\n${start?.run ?? 'run'}: new task = head accuracy on the test split; retention = weighted k-NN on the pretraining domain (%)${event.interrupted ? ' — INTERRUPTED, partial' : ''}`,
                knnHeadline: headline(),
                baselineRetention: baseline.retention,
                baselineFrozenHead: baseline.frozenHead,
                baselineRetentionLinear: baseline.linear,
                rows,
              }),
            );
            if (this.options.plots !== false && results.some((r) => r.status === 'ok')) {
              const points = rows
                .filter((row) => row.newTask && row.retention)
                .map((row) => ({ method: row.method, newTaskAccuracy: row.newTask!.mean, retentionAccuracy: row.retention!.mean, trainableParams: row.trainableParams, newTaskStd: row.newTask!.std, retentionStd: row.retention!.std }));
              const title = start?.run ?? 'run';
              writeFileAtomic(path.join(outDir, 'tradeoff.svg'), await renderSvg(tradeoffSpec(points, baseline.retention, `${title}: new task vs retention`)));
              const withStart = baseline.retention === undefined ? curves : [...new Set(curves.map((c) => c.method))].flatMap((method) => [{ method, step: 0, retentionAccuracy: baseline.retention! }, ...curves.filter((c) => c.method === method)]);
              writeFileAtomic(path.join(outDir, 'forgetting.svg'), await renderSvg(forgettingSpec(meanCurves(withStart), baseline.retention, `${title}: retention during fine-tuning`)));
            }
            if (this.options.report !== false) {
              try {
                writeReport(outDir);
              } catch (error) {
                err(`vitpeft: warning: report.html not written: ${(error as Error).message}\n`);
              }
            }
            return event as PipelineEvent;
          });

        return events.pipe(
          concatMap((event): Observable<PipelineEvent> => {
            switch (event.kind) {
              case 'run-start':
                onStart(event);
                break;
              case 'step':
                onStep(event);
                break;
              case 'eval':
                onEval(event);
                break;
              case 'method-start':
                progress.methodStart(event);
                break;
              case 'method-end':
                results.push(event.result);
                writeResults();
                // One timings row per finished job: an interrupted one gets its row when it finishes.
                if (!event.restored && event.result.status !== 'interrupted') {
                  timings?.append({ run: start?.run, method: event.result.method, seed: event.result.seed, steps: event.result.steps, status: event.result.status, seconds: event.result.seconds });
                }
                progress.methodEnd(event.result, headline(), event.restored === true);
                break;
              case 'checkpoint':
                break;
              case 'run-end':
                return onEnd(event);
            }
            return of(event);
          }),
          finalize(() => {
            progress.done();
            metrics?.close();
            evals?.close();
            timings?.close();
          }),
        );
      });
  }
}

/** Averages curve points over seeds (same method and step), with their sample standard deviation. */
export function meanCurves(points: readonly CurvePoint[]): CurvePoint[] {
  const groups = new Map<string, CurvePoint[]>();
  for (const point of points) {
    const key = `${point.method}\u0000${point.step}`;
    groups.set(key, [...(groups.get(key) ?? []), point]);
  }
  return [...groups.values()].map((group) => {
    const spread = stat(group.map((p) => p.retentionAccuracy));
    return { method: group[0].method, step: group[0].step, retentionAccuracy: spread?.mean ?? NaN, retentionStd: spread?.std };
  });
}
