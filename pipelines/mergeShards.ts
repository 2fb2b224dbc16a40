// Writes the run folder of a whole grid from its shard folders (`vitpeft merge`): metrics.csv,
// evals.csv and timings.csv are the shards' rows in the order an unsharded run writes its jobs
// (their text unchanged), spec.json is the first shard's, and results.csv, summary.csv, the
// table and the plots come from the reporter stage itself, fed the shards' results and
// evaluations as restored events, so a merged folder holds what one unsharded run writes and
// results.csv is byte for byte the same. Shards are only read; the merged folder is written
// whole files at a time (atomic renames), never appended by two processes.

import { parse } from 'csv-parse/sync';
import * as fs from 'fs';
import * as path from 'path';
import { Observable, from } from 'rxjs';
import { writeFileAtomic } from '../common/atomicWrite';
import { BASELINE, PipelineEvent } from '../common/events';
import type { ReporterStage } from '../stages/reporter/stage';
import { linearProbeSettings } from './prepare';
import { RUN_RECORD, jobKey } from './resume';
import { GridJob, ShardGrid, ShardGridError } from './shardGrid';

/** Files of a merged folder that a merge writes again (a stale one from an earlier merge must not stay). */
const MERGED = ['metrics.csv', 'evals.csv', 'timings.csv', 'results.csv', 'summary.csv', 'spec.json', 'tradeoff.svg', 'forgetting.svg'];

export const missingJobs = (grid: ShardGrid): GridJob[] => grid.jobs.filter((job) => job.result === undefined);

/** The shards' rows of one CSV: the baseline's first, then each merged job's in run order. */
function mergeCsv(grid: ShardGrid, name: string): string | undefined {
  let header: string | undefined;
  const rows = new Map<string, string[]>();
  for (const { folder } of grid.shards) {
    const file = path.join(folder, name);
    if (!fs.existsSync(file)) continue;
    const text = fs.readFileSync(file, 'utf8');
    const ownHeader = text.slice(0, text.indexOf('\n') + 1);
    if (ownHeader === '') continue;
    if (header === undefined) header = ownHeader;
    else if (ownHeader !== header) throw new ShardGridError(file, `its header differs from the other shards' (${header.trim()})`);
    const records = parse(text, { columns: true, raw: true, skip_empty_lines: true }) as Array<{ record: Record<string, string>; raw: string }>;
    for (const { record, raw } of records) {
      const key = record.method === BASELINE ? BASELINE : jobKey(record.method, record.seed);
      rows.set(key, [...(rows.get(key) ?? []), raw]);
    }
  }
  if (header === undefined) return undefined;
  const baseline = rows.get(BASELINE)?.slice(0, 1) ?? [];
  const jobs = grid.jobs.filter((job) => job.result !== undefined).flatMap((job) => rows.get(jobKey(job.method, job.seed)) ?? []);
  return header + [...baseline, ...jobs].join('');
}

/**
 * Writes the merged run into `into` and returns the reporter's events (subscribe to write
 * results.csv, summary.csv and the plots and to print the table). Jobs without a final row are
 * left out; run-end then says the run is incomplete.
 */
export function mergeShards(grid: ShardGrid, into: string, reporter: ReporterStage): Observable<PipelineEvent> {
  const target = path.resolve(into);
  if (grid.shards.some((shard) => shard.folder === target)) throw new ShardGridError(target, 'is one of the shards; merge into another folder');
  if (fs.existsSync(path.join(target, RUN_RECORD))) throw new ShardGridError(target, `holds a run (${RUN_RECORD}); merge into another folder`);
  fs.mkdirSync(target, { recursive: true });
  for (const name of MERGED) fs.rmSync(path.join(target, name), { force: true });
  for (const name of ['metrics.csv', 'evals.csv', 'timings.csv']) {
    const text = mergeCsv(grid, name);
    if (text !== undefined) writeFileAtomic(path.join(target, name), text);
  }
  const spec = grid.shards.map(({ folder }) => path.join(folder, 'spec.json')).find((file) => fs.existsSync(file));
  if (spec) writeFileAtomic(path.join(target, 'spec.json'), fs.readFileSync(spec));

  const { spec: pipelineSpec } = grid.loaded;
  const merged = grid.jobs.filter((job) => job.result !== undefined);
  const events: PipelineEvent[] = [
    {
      kind: 'run-start',
      run: pipelineSpec.name,
      outDir: target,
      backend: 'merged',
      model: pipelineSpec.model.checkpoint,
      jobs: grid.jobs.map((job) => ({ method: job.method, seed: job.seed, steps: job.steps })),
      knnK: grid.knn.k,
      knnHeadline: grid.knn.headline,
      ...(linearProbeSettings(pipelineSpec.evaluate?.linearProbe) ? { linearProbe: true } : {}),
    },
    ...(grid.baseline ? [grid.baseline] : []),
    ...merged.flatMap((job): PipelineEvent[] => [...job.evals, { kind: 'method-end', result: job.result!, restored: true }]),
    {
      kind: 'run-end',
      baselineRetention: grid.baseline?.retention?.[grid.knn.headline],
      baselineFrozenHead: grid.baseline?.frozenHeadAccuracy,
      results: merged.map((job) => job.result!),
      interrupted: merged.length < grid.jobs.length,
    },
  ];
  // Whatever else the reporter stage writes at run-end (a report page, say) comes with it here.
  return from(events).pipe(reporter.record());
}
