// The shards of one grid, read back for `vitpeft merge`: each shard folder's run.json must
// record the same pipeline, --only and --seeds and the same shard count, and no shard may be
// given twice. From them comes the whole run's job list (the order an unsharded run uses) with,
// for every job, its final results row and evaluations from the shard that ran it, or why it is
// missing (no folder for its shard, not started, interrupted).

import * as fs from 'fs';
import * as path from 'path';
import { LocatedError } from '../common/errors';
import { BASELINE, EvalEvent, MethodResult } from '../common/events';
import { readCsv } from '../stages/reporter/csvLog';
import { readResultsFile } from '../stages/reporter/resultsFile';
import { planJobs } from './job';
import { RUN_RECORD, RecordedOptions, evalFromRow, jobKey, jsonDifferences, readRunRecord, recordedSpec } from './resume';
import type { Shard } from './shardEnvironment';
import type { LoadedPipeline } from './spec';

/** Shard folders that cannot be merged into one run, and why. */
export class ShardGridError extends LocatedError {}

export interface ShardFolder {
  readonly folder: string;
  readonly shard: Shard;
}

export interface GridJob {
  readonly method: string;
  readonly seed: number;
  readonly steps: number;
  readonly shard: Shard;
  /** The final row (status ok or diverged), absent when the job is missing. */
  readonly result?: MethodResult;
  /** Why the job has no final row. */
  readonly missing?: string;
  /** Its recorded evaluations (restored events, for the forgetting curves). */
  readonly evals: readonly EvalEvent[];
}

export interface ShardGrid {
  readonly loaded: LoadedPipeline;
  /** The shards' options, less the shard. */
  readonly options: Omit<RecordedOptions, 'shard'>;
  readonly count: number;
  /** The folders given, by shard index. */
  readonly shards: readonly ShardFolder[];
  /** Every job of the run, in the order an unsharded run does them. */
  readonly jobs: readonly GridJob[];
  /** The pretrained baseline's evaluation (from the first shard that has one). */
  readonly baseline?: EvalEvent;
  /** Where the shards disagree in a way that does not stop the merge (backends, baselines). */
  readonly warnings: readonly string[];
  /** The run's k-NN k and the one its table reports (from the shards' spec.json). */
  readonly knn: { readonly k: readonly number[]; readonly headline: number };
}

/** A run's folder: <out>/<name>, with the shard in the name so the shards of a grid never share a folder. */
export function runFolder(out: string, name: string, shard?: Shard): string {
  return path.resolve(out, shard ? `${name}-shard${shard.index}of${shard.count}` : name);
}

const FINAL = new Set(['ok', 'diverged']);

/** Whether `folder` was written by `vitpeft run --shard` (its run.json records a shard). */
export function isShardFolder(folder: string): boolean {
  const file = path.join(folder, RUN_RECORD);
  if (!fs.existsSync(file)) return false;
  return readRunRecord(folder).options.shard !== undefined;
}

function readKnn(folder: string): { k: number[]; headline: number } | undefined {
  const file = path.join(folder, 'spec.json');
  if (!fs.existsSync(file)) return undefined;
  const knn = (JSON.parse(fs.readFileSync(file, 'utf8')) as { resolved?: { knn?: { k?: number[]; headline?: number } } }).resolved?.knn;
  if (!Array.isArray(knn?.k) || typeof knn?.headline !== 'number') throw new ShardGridError(file, 'has no resolved.knn with k and headline; is it a vitpeft run folder?');
  return { k: knn.k, headline: knn.headline };
}

export function readShardGrid(folders: readonly string[]): ShardGrid {
  if (folders.length === 0) throw new ShardGridError('vitpeft merge', 'no shard folders given');
  const records = folders.map((folder) => ({ folder: path.resolve(folder), record: readRunRecord(folder) }));
  const first = records[0];
  const shardOf = (folder: string, record: (typeof records)[number]['record']): Shard => {
    if (!record.options.shard) throw new ShardGridError(folder, 'is not a shard (its run.json records no --shard); merge shard folders of one grid');
    return record.options.shard;
  };
  const count = shardOf(first.folder, first.record).count;
  const byIndex = new Map<number, string>();
  const warnings: string[] = [];
  for (const { folder, record } of records) {
    const shard = shardOf(folder, record);
    const specDifferences = jsonDifferences(recordedSpec(first.record.loaded.spec), recordedSpec(record.loaded.spec));
    if (specDifferences.length > 0) throw new ShardGridError(folder, `is a shard of another pipeline than ${first.folder} (different: ${specDifferences.join(', ')})`);
    const optionDifferences = jsonDifferences({ only: first.record.options.only, seeds: first.record.options.seeds }, { only: record.options.only, seeds: record.options.seeds });
    if (optionDifferences.length > 0) throw new ShardGridError(folder, `ran other jobs than ${first.folder} (different --${optionDifferences.join(', --')})`);
    if (shard.count !== count) throw new ShardGridError(folder, `is shard ${shard.index}/${shard.count}, but ${first.folder} is one of ${count} shards`);
    const twin = byIndex.get(shard.index);
    if (twin !== undefined) throw new ShardGridError(folder, `is shard ${shard.index}/${count}, as is ${twin}; give each shard once`);
    byIndex.set(shard.index, folder);
    if (record.backend !== first.record.backend) warnings.push(`${folder} ran on backend '${record.backend}', ${first.folder} on '${first.record.backend}'`);
  }
  const spec = first.record.loaded.spec;
  const { shard: _first, ...options } = first.record.options;
  const parent = path.dirname(first.folder);
  const shards = [...byIndex.entries()].sort(([a], [b]) => a - b).map(([index, folder]) => ({ folder, shard: { index, count } }));

  let baseline: EvalEvent | undefined;
  let knn: { k: number[]; headline: number } | undefined;
  const found = new Map<string, { result?: MethodResult; missing?: string; evals: EvalEvent[] }>();
  for (const { folder, shard } of shards) {
    knn ??= readKnn(folder);
    const resultsFile = path.join(folder, 'results.csv');
    const results = fs.existsSync(resultsFile) ? readResultsFile(resultsFile) : undefined;
    if (results?.run !== undefined && results.run !== spec.name) throw new ShardGridError(resultsFile, `holds run '${results.run}' but run.json is for '${spec.name}'`);
    const evalsFile = path.join(folder, 'evals.csv');
    const evals = fs.existsSync(evalsFile) ? readCsv(evalsFile).map((row) => evalFromRow(row, evalsFile)) : [];
    for (const event of evals.filter((e) => e.method === BASELINE)) {
      if (baseline === undefined) baseline = event;
      else if (JSON.stringify(event.retention) !== JSON.stringify(baseline.retention)) warnings.push(`${folder}: its pretrained baseline differs from ${shards[0].folder}'s; keeping the first`);
    }
    for (const job of planJobs(spec, { ...options, shard })) {
      const key = jobKey(job.method, job.seed);
      const row = results?.results.find((r) => r.method === job.method && r.seed === job.seed);
      const jobEvals = evals.filter((e) => e.method === job.method && e.seed === job.seed);
      if (row && FINAL.has(row.status)) found.set(key, { result: row, evals: jobEvals });
      else found.set(key, { missing: `${row ? row.status : 'not run'} in ${folder}`, evals: [] });
    }
  }
  const jobs = planJobs(spec, options).map((job, i): GridJob => {
    const shard = { index: (i % count) + 1, count };
    const entry = found.get(jobKey(job.method, job.seed));
    const base = { method: job.method, seed: job.seed, steps: job.settings.steps, shard };
    if (entry) return { ...base, ...entry };
    return { ...base, missing: `its folder was not given (expected ${runFolder(parent, spec.name, shard)})`, evals: [] };
  });
  if (!knn) throw new ShardGridError(shards[0].folder, 'no shard has a spec.json: none of them started; run the shards first');
  return { loaded: first.record.loaded, options, count, shards, jobs, baseline, warnings, knn };
}
