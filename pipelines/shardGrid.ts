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
import { RUN_RECORD, RecordedOptions, evalFromRow, jobKey, jsonDifferences, readRecordFile, readRunRecord, recordedSpec } from './resume';
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
  // Only the options are looked at here: a grid's shards are checked whole by readShardGrid.
  const { value } = readRecordFile(folder, RUN_RECORD, 'not a run folder');
  const options = typeof value === 'object' && value !== null ? (value as { options?: unknown }).options : undefined;
  return typeof options === 'object' && options !== null && (options as { shard?: unknown }).shard !== undefined;
}

function readKnn(folder: string): { k: number[]; headline: number } | undefined {
  const file = path.join(folder, 'spec.json');
  if (!fs.existsSync(file)) return undefined;
  const knn = (JSON.parse(fs.readFileSync(file, 'utf8')) as { resolved?: { knn?: { k?: number[]; headline?: number } } }).resolved?.knn;
  if (!Array.isArray(knn?.k) || typeof knn?.headline !== 'number') throw new ShardGridError(file, 'has no resolved.knn with k and headline; is it a vitpeft run folder?');
  return { k: knn.k, headline: knn.headline };
}

type Recorded = { readonly folder: string; readonly record: ReturnType<typeof readRunRecord> };

/** The shard folders, by index, after checking that they are shards of one grid. */
function checkShards(records: readonly Recorded[], warnings: string[]): ShardFolder[] {
  const [first] = records;
  const shardOf = ({ folder, record }: Recorded): Shard => {
    if (!record.options.shard) throw new ShardGridError(folder, 'is not a shard (its run.json records no --shard); merge shard folders of one grid');
    return record.options.shard;
  };
  const count = shardOf(first).count;
  const byIndex = new Map<number, string>();
  for (const recorded of records) {
    const { folder, record } = recorded;
    const shard = shardOf(recorded);
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
  return [...byIndex.entries()].sort(([a], [b]) => a - b).map(([index, folder]) => ({ folder, shard: { index, count } }));
}

type Found = Pick<GridJob, 'result' | 'missing' | 'evals'>;

/** What one shard folder holds for each of its jobs, and its baseline evaluation. */
function readShard({ folder, shard }: ShardFolder, loaded: LoadedPipeline, options: ShardGrid['options']): { jobs: Map<string, Found>; baseline?: EvalEvent } {
  const { spec } = loaded;
  const resultsFile = path.join(folder, 'results.csv');
  const results = fs.existsSync(resultsFile) ? readResultsFile(resultsFile) : undefined;
  if (results?.run !== undefined && results.run !== spec.name) throw new ShardGridError(resultsFile, `holds run '${results.run}' but run.json is for '${spec.name}'`);
  const evalsFile = path.join(folder, 'evals.csv');
  const evals = fs.existsSync(evalsFile) ? readCsv(evalsFile).map((row) => evalFromRow(row, evalsFile)) : [];
  const jobs = new Map<string, Found>();
  for (const job of planJobs(spec, { ...options, shard })) {
    const row = results?.results.find((r) => r.method === job.method && r.seed === job.seed);
    const found: Found =
      row && FINAL.has(row.status)
        ? { result: row, evals: evals.filter((e) => e.method === job.method && e.seed === job.seed) }
        : { missing: `${row ? row.status : 'not run'} in ${folder}`, evals: [] };
    jobs.set(jobKey(job.method, job.seed), found);
  }
  return { jobs, baseline: evals.find((e) => e.method === BASELINE) };
}

export function readShardGrid(folders: readonly string[]): ShardGrid {
  if (folders.length === 0) throw new ShardGridError('vitpeft merge', 'no shard folders given');
  const records = folders.map((folder) => ({ folder: path.resolve(folder), record: readRunRecord(folder) }));
  const warnings: string[] = [];
  const shards = checkShards(records, warnings);
  const { loaded } = records[0].record;
  const { shard: _first, ...options } = records[0].record.options;
  const { count } = shards[0].shard;

  let baseline: EvalEvent | undefined;
  let knn: { k: number[]; headline: number } | undefined;
  const found = new Map<string, Found>();
  for (const shard of shards) {
    knn ??= readKnn(shard.folder);
    const read = readShard(shard, loaded, options);
    for (const [key, job] of read.jobs) found.set(key, job);
    if (baseline === undefined) baseline = read.baseline;
    else if (read.baseline && JSON.stringify(read.baseline.retention) !== JSON.stringify(baseline.retention)) {
      warnings.push(`${shard.folder}: its pretrained baseline differs from ${shards[0].folder}'s; keeping the first`);
    }
  }
  if (!knn) throw new ShardGridError(shards[0].folder, 'no shard has a spec.json: none of them started; run the shards first');
  // Which shard each job belongs to, for the ones whose folder was not given.
  const shardOfJob = new Map<string, Shard>();
  for (let index = 1; index <= count; index++) {
    for (const job of planJobs(loaded.spec, { ...options, shard: { index, count } })) shardOfJob.set(jobKey(job.method, job.seed), { index, count });
  }
  const parent = path.dirname(shards[0].folder);
  const jobs = planJobs(loaded.spec, options).map((job): GridJob => {
    const key = jobKey(job.method, job.seed);
    const shard = shardOfJob.get(key)!;
    const base = { method: job.method, seed: job.seed, steps: job.settings.steps, shard };
    return { ...base, ...(found.get(key) ?? { missing: `its folder was not given (expected ${runFolder(parent, loaded.spec.name, shard)})`, evals: [] }) };
  });
  return { loaded, options, count, shards, jobs, baseline, warnings, knn };
}
