// Reading a results.csv back (vitpeft merge, and a resumed run restoring its finished methods):
// every column checked, numbers parsed, unknown statuses refused.

import * as fs from 'fs';
import { BASELINE, MethodResult, MethodStatus } from '../../common/events';
import { readCsv } from './csvLog';
import { LINEAR_PROBE_COLUMN, RESULT_COLUMNS } from './resultColumns';
import { LocatedError } from '../../common/errors';

export const METHOD_STATUSES: readonly MethodStatus[] = ['ok', 'diverged', 'failed', 'interrupted'];

/** A results.csv that is missing or does not hold what vitpeft writes there. */
export class ResultsFileError extends LocatedError {}

export interface ResultsFile {
  /** The run name of its rows (undefined for a file with a header only). */
  readonly run?: string;
  readonly baselineRetention?: number;
  readonly baselineFrozenHead?: number;
  /** The baseline's linear-probe retention (a run that measured it). */
  readonly baselineRetentionLinear?: number;
  /** Every method row, in file order (seconds are not in results.csv: 0). */
  readonly results: MethodResult[];
}

function number(row: Record<string, string>, column: string, file: string): number | undefined {
  const text = row[column];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) throw new ResultsFileError(file, `column '${column}' holds '${text}', expected a number`);
  return value;
}

export function readResultsFile(file: string): ResultsFile {
  if (!fs.existsSync(file)) throw new ResultsFileError(file, 'no such file');
  let rows: Record<string, string>[];
  try {
    rows = readCsv(file);
  } catch (error) {
    throw new ResultsFileError(file, `not a readable CSV (${(error as Error).message})`);
  }
  const missing = RESULT_COLUMNS.filter((column) => rows.length > 0 && !(column in rows[0]));
  if (missing.length > 0) throw new ResultsFileError(file, `missing column(s) ${missing.join(', ')}`);
  let baselineRetention: number | undefined;
  let baselineFrozenHead: number | undefined;
  let baselineRetentionLinear: number | undefined;
  const results: MethodResult[] = [];
  for (const row of rows) {
    if (row.method === BASELINE) {
      baselineRetention = number(row, 'retention_accuracy', file);
      baselineFrozenHead = number(row, 'frozen_head_accuracy', file);
      baselineRetentionLinear = number(row, LINEAR_PROBE_COLUMN, file);
      continue;
    }
    const status = row.status as MethodStatus;
    if (!METHOD_STATUSES.includes(status)) throw new ResultsFileError(file, `status '${row.status}' of ${row.method} is not one of ${METHOD_STATUSES.join(', ')}`);
    const retentionLinear = number(row, LINEAR_PROBE_COLUMN, file);
    results.push({
      method: row.method,
      seed: number(row, 'seed', file) ?? 0,
      trainableParams: number(row, 'trainable_params', file) ?? 0,
      steps: number(row, 'steps', file) ?? 0,
      status,
      newTaskAccuracy: number(row, 'new_task_accuracy', file),
      newTaskBest: number(row, 'new_task_best', file),
      retentionAccuracy: number(row, 'retention_accuracy', file),
      retentionUnplugged: number(row, 'retention_unplugged', file),
      ...(retentionLinear === undefined ? {} : { retentionLinear }),
      frozenHeadAccuracy: number(row, 'frozen_head_accuracy', file),
      meanAccuracy: number(row, 'mean_accuracy', file),
      seconds: 0,
      note: row.note || undefined,
    });
  }
  return { run: rows[0]?.run, baselineRetention, baselineFrozenHead, ...(baselineRetentionLinear === undefined ? {} : { baselineRetentionLinear }), results };
}
