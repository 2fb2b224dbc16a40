// A run folder read back as the events that made it: what report.html draws and what a browser
// that connects to the live view receives before the live tail. Steps come from metrics.csv
// (thinned to at most MAX_STEPS_PER_SERIES per method and seed, the last step always kept),
// evaluations from evals.csv, finished methods from results.csv; the run's description from
// spec.json and run.json. Only whole lines are read, so a file being appended to is safe.

import * as fs from 'fs';
import * as path from 'path';
import { parse } from 'csv-parse/sync';
import { BASELINE, EvalEvent, MethodEndEvent, PipelineEvent, StepEvent } from '../../../common/events';
import { LocatedError } from '../../../common/errors';
import { readResultsFile } from '../resultsFile';
import { RunInfo, readRunInfo } from './runInfo';

export const MAX_STEPS_PER_SERIES = 1000;

/** The files whose presence makes a folder a run folder. */
export const RUN_MARKERS = ['results.csv', 'metrics.csv', 'run.json'] as const;

/** A run folder's file that does not hold what vitpeft writes there. */
export class RunFolderError extends LocatedError {}

export interface RunHistory {
  readonly info: RunInfo;
  readonly events: PipelineEvent[];
  /** report.html exists: the run reached its end (a fresh run removes it first). */
  readonly finished: boolean;
  /** A job stopped by a signal and not yet resumed (its results row says 'interrupted'). */
  readonly interrupted: boolean;
}

export function isRunFolder(folder: string): boolean {
  return RUN_MARKERS.some((name) => fs.existsSync(path.join(folder, name)));
}

/** The complete lines of a CSV's text (a trailing partial line is left for later), as records. */
export function parseCsvRows(text: string, file: string, header?: string): Record<string, string>[] {
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  try {
    return parse((header ?? '') + complete, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  } catch (error) {
    throw new RunFolderError(file, `not a readable CSV (${(error as Error).message})`);
  }
}

function numberIn(row: Record<string, string>, column: string, file: string, required: boolean): number | undefined {
  const text = row[column];
  if (text === undefined || text === '') {
    if (required) throw new RunFolderError(file, `a row lacks column '${column}'`);
    return undefined;
  }
  const value = Number(text);
  if (!Number.isFinite(value) && !/^-?Infinity$|^NaN$/.test(text)) throw new RunFolderError(file, `column '${column}' holds '${text}', expected a number`);
  return value;
}

/** A metrics.csv row as the step event it recorded (`steps`: the job's length when known, else 0). */
export function stepFromRow(row: Record<string, string>, file: string, steps: number): StepEvent {
  return {
    kind: 'step',
    method: row.method,
    seed: numberIn(row, 'seed', file, true)!,
    step: numberIn(row, 'step', file, true)!,
    steps,
    epoch: numberIn(row, 'epoch', file, false) ?? 0,
    loss: numberIn(row, 'loss', file, false) ?? NaN,
    lr: numberIn(row, 'lr', file, false) ?? NaN,
    imagesPerSecond: numberIn(row, 'images_per_second', file, false) ?? 0,
  };
}

function byK(row: Record<string, string>, prefix: string, file: string): Record<number, number> | undefined {
  const values: Record<number, number> = {};
  for (const column of Object.keys(row)) {
    const match = new RegExp(`^${prefix}(\\d+)$`).exec(column);
    const value = match ? numberIn(row, column, file, false) : undefined;
    if (match && value !== undefined) values[Number(match[1])] = value;
  }
  return Object.keys(values).length > 0 ? values : undefined;
}

/** Linear-probe retention on an event only when the row has it. */
function optionalLinear(value: number | undefined): { retentionLinear?: number } {
  return value === undefined ? {} : { retentionLinear: value };
}

/** An evals.csv row as the evaluation event it recorded. */
export function evalFromRow(row: Record<string, string>, file: string): EvalEvent {
  return {
    kind: 'eval',
    method: row.method,
    seed: numberIn(row, 'seed', file, true)!,
    step: numberIn(row, 'step', file, true)!,
    newTaskAccuracy: numberIn(row, 'new_task_accuracy', file, false),
    retention: byK(row, 'retention_k', file),
    retentionUnplugged: byK(row, 'retention_unplugged_k', file),
    ...optionalLinear(numberIn(row, 'retention_linear', file, false)),
    frozenHeadAccuracy: numberIn(row, 'frozen_head_accuracy', file, false),
    seconds: numberIn(row, 'seconds', file, false) ?? 0,
  };
}

/** Keeps every n-th element of each series (and its last) so that none is longer than `limit`. */
export function thinSeries<T>(items: readonly T[], key: (item: T) => string, limit: number): T[] {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  const seen = new Map<string, number>();
  return items.filter((item) => {
    const series = key(item);
    const count = counts.get(series)!;
    const index = seen.get(series) ?? 0;
    seen.set(series, index + 1);
    // Multiples of the stride up to the last index, which is kept too: never more than `limit`.
    const stride = count <= limit ? 1 : Math.ceil((count - 1) / Math.max(1, limit - 1));
    return index % stride === 0 || index === count - 1;
  });
}

function readIfPresent(file: string): string | undefined {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
}

/** The method-end events of results.csv (the baseline row becomes the pretrained evaluation's values). */
export function resultsEvents(file: string): { ends: MethodEndEvent[]; baselineRetention?: number; baselineFrozenHead?: number } {
  const read = readResultsFile(file);
  return { ends: read.results.map((result) => ({ kind: 'method-end', result })), baselineRetention: read.baselineRetention, baselineFrozenHead: read.baselineFrozenHead };
}

/** Everything a run folder holds, as events in the order the page applies them. */
export function readRunHistory(folder: string): RunHistory {
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) throw new RunFolderError(folder, 'no such folder');
  if (!isRunFolder(folder)) throw new RunFolderError(folder, `not a run folder (none of ${RUN_MARKERS.join(', ')}; expected out/<run> as written by vitpeft run)`);
  const info = readRunInfo(folder);
  const events: PipelineEvent[] = [];
  const metricsFile = path.join(folder, 'metrics.csv');
  const metricsText = readIfPresent(metricsFile);
  if (metricsText !== undefined) {
    const steps = parseCsvRows(metricsText, metricsFile).map((row) => stepFromRow(row, metricsFile, info.steps ?? 0));
    events.push(...thinSeries(steps, (s) => `${s.method}\u0000${s.seed}`, MAX_STEPS_PER_SERIES));
  }
  const evalsFile = path.join(folder, 'evals.csv');
  const evalsText = readIfPresent(evalsFile);
  if (evalsText !== undefined) events.push(...parseCsvRows(evalsText, evalsFile).map((row) => evalFromRow(row, evalsFile)));
  const resultsFile = path.join(folder, 'results.csv');
  if (fs.existsSync(resultsFile)) {
    const { ends, baselineRetention, baselineFrozenHead } = resultsEvents(resultsFile);
    // A baseline evaluation that evals.csv lacks (a merged folder) still reaches the page.
    if (baselineRetention !== undefined && !events.some((e) => e.kind === 'eval' && e.method === BASELINE)) {
      events.push({ kind: 'eval', method: BASELINE, seed: 0, step: 0, retention: { [info.knnHeadline]: baselineRetention }, frozenHeadAccuracy: baselineFrozenHead, seconds: 0 });
    }
    events.push(...ends);
  }
  const interrupted = events.some((e) => e.kind === 'method-end' && e.result.status === 'interrupted');
  return { info, events, finished: fs.existsSync(path.join(folder, 'report.html')), interrupted };
}
