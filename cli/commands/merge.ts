// `vitpeft merge DIR...`: one table from the results.csv of several runs (the shards of a grid).

import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../../common/atomicWrite';
import { BASELINE, MethodResult, MethodStatus } from '../../pipelines/events';
import { readCsv } from '../../stages/reporter/csvLog';
import { RESULT_COLUMNS, resultsCsv } from '../../stages/reporter/stage';
import { formatTable, summarize } from '../../stages/reporter/table';
import { UsageError } from '../errors';

const STATUSES: readonly MethodStatus[] = ['ok', 'diverged', 'failed', 'interrupted'];

function number(row: Record<string, string>, column: string, file: string): number | undefined {
  const text = row[column];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) throw new UsageError(`${file}: column '${column}' holds '${text}', expected a number`);
  return value;
}

export function readResults(dir: string): { run: string; baselineRetention?: number; baselineFrozenHead?: number; results: MethodResult[] } {
  const file = path.join(dir, 'results.csv');
  if (!fs.existsSync(file)) throw new UsageError(`${file}: no such file (is ${dir} a run folder?)`);
  const rows = readCsv(file);
  const missing = RESULT_COLUMNS.filter((column) => rows.length > 0 && !(column in rows[0]));
  if (missing.length > 0) throw new UsageError(`${file}: missing column(s) ${missing.join(', ')}`);
  let baselineRetention: number | undefined;
  let baselineFrozenHead: number | undefined;
  const results: MethodResult[] = [];
  for (const row of rows) {
    if (row.method === BASELINE) {
      baselineRetention = number(row, 'retention_accuracy', file);
      baselineFrozenHead = number(row, 'frozen_head_accuracy', file);
      continue;
    }
    const status = row.status as MethodStatus;
    if (!STATUSES.includes(status)) throw new UsageError(`${file}: status '${row.status}' of ${row.method} is not one of ${STATUSES.join(', ')}`);
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
      frozenHeadAccuracy: number(row, 'frozen_head_accuracy', file),
      meanAccuracy: number(row, 'mean_accuracy', file),
      seconds: 0,
      note: row.note || undefined,
    });
  }
  return { run: rows[0]?.run ?? path.basename(dir), baselineRetention, baselineFrozenHead, results };
}

/** The k that a run's retention column reports, from its spec.json (20, DINO's usual, if absent). */
function knnHeadline(dir: string): number {
  try {
    const spec = JSON.parse(fs.readFileSync(path.join(dir, 'spec.json'), 'utf8')) as { resolved?: { knn?: { headline?: number } } };
    return spec.resolved?.knn?.headline ?? 20;
  } catch {
    return 20;
  }
}

export function mergeCommand(): Command {
  return new Command('merge')
    .description("combine the results.csv of several runs (e.g. the shards of a grid) into one table")
    .argument('<dirs...>', 'run folders (out/<run>)')
    .option('--out <file>', 'also write the merged results.csv here')
    .action((dirs: string[], options: { out?: string }) => {
      const runs = dirs.map(readResults);
      const baselines = runs.map((r) => r.baselineRetention).filter((v): v is number => v !== undefined);
      if (baselines.some((b) => Math.abs(b - baselines[0]) > 1e-9)) {
        process.stderr.write(`vitpeft: warning: the runs' pretrained baselines differ (${baselines.join(', ')}); showing the first\n`);
      }
      const results = runs.flatMap((r) => r.results);
      const run = [...new Set(runs.map((r) => r.run))].join('+');
      process.stdout.write(
        formatTable({
          title: `${run}: merged from ${dirs.length} run folder(s)`,
          knnHeadline: knnHeadline(dirs[0]),
          baselineRetention: baselines[0],
          baselineFrozenHead: runs.find((r) => r.baselineFrozenHead !== undefined)?.baselineFrozenHead,
          rows: summarize(results),
        }),
      );
      if (options.out) writeFileAtomic(options.out, resultsCsv(run, { retention: baselines[0], frozenHead: runs[0]?.baselineFrozenHead }, results));
    });
}
