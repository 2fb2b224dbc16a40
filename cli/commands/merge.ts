// `vitpeft merge DIR...`: the shard folders of one grid (`vitpeft run --shard`) become the whole
// run's folder — results.csv, summary.csv, evals/metrics/timings, the plots and the table, as one
// unsharded run writes them (pipelines/mergeShards.ts); shards of different pipelines are
// refused and missing jobs named. Folders of unrelated runs (no shard in their run.json) are
// shown as one table, as before.

import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../../common/atomicWrite';
import { MethodResult } from '../../common/events';
import { ResultsFileError, readResultsFile } from '../../stages/reporter/resultsFile';
import { resultsCsv } from '../../stages/reporter/stage';
import { formatTable, summarize } from '../../stages/reporter/table';
import { writeReport } from '../../stages/reporter/report/writeReport';
import { UsageError } from '../errors';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import { mergeShards, missingJobs } from '../../pipelines/mergeShards';
import { RUN_RECORD } from '../../pipelines/resume';
import { ShardGrid, isShardFolder, readShardGrid, runFolder } from '../../pipelines/shardGrid';
import type { ReporterOptions } from '../../stages/reporter/stage';
import { lastValueFrom } from 'rxjs';

interface MergeOptions {
  out?: string;
  into?: string;
  partial?: boolean;
  plots: boolean;
}

export function readResults(dir: string): { run: string; baselineRetention?: number; baselineFrozenHead?: number; results: MethodResult[] } {
  const file = path.join(dir, 'results.csv');
  try {
    const read = readResultsFile(file);
    return { ...read, run: read.run ?? path.basename(dir) };
  } catch (error) {
    if (!(error instanceof ResultsFileError)) throw error;
    throw new UsageError(error.detail === 'no such file' ? `${file}: no such file (is ${dir} a run folder?)` : error.message);
  }
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

/**
 * `vitpeft merge out/<name>` where out/<name> is not a run: the shard folders beside it
 * (out/<name>-shard<i>of<n>), merged into it.
 */
export function shardsBeside(dir: string): string[] {
  if (fs.existsSync(path.join(dir, RUN_RECORD))) return [];
  const parent = path.dirname(path.resolve(dir));
  const pattern = new RegExp(`^${path.basename(path.resolve(dir)).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-shard\\d+of\\d+$`);
  if (!fs.existsSync(parent)) return [];
  return fs.readdirSync(parent).filter((name) => pattern.test(name)).sort().map((name) => path.join(parent, name));
}

/** The grid's shard folders become one run folder (default: <out>/<name>, beside the shards). */
async function mergeGrid(dirs: string[], options: MergeOptions): Promise<void> {
  for (const dir of dirs) {
    if (!fs.existsSync(path.join(dir, RUN_RECORD))) throw new UsageError(`${dir}: not a shard folder (no ${RUN_RECORD}); give the folders that vitpeft run --shard wrote, all of one grid`);
  }
  const grid: ShardGrid = readShardGrid(dirs);
  const name = grid.loaded.spec.name;
  for (const warning of grid.warnings) process.stderr.write(`vitpeft: warning: ${warning}\n`);
  const missing = missingJobs(grid);
  const list = missing.map((job) => `${job.method} seed ${job.seed} (shard ${job.shard.index}/${job.shard.count}: ${job.missing})`).join('; ');
  if (missing.length > 0 && !options.partial) {
    throw new UsageError(
      `${missing.length} of ${grid.jobs.length} jobs of '${name}' have no results: ${list}; ` +
        `run or resume those shards (vitpeft run PIPELINE --shard i/n --resume auto), or merge what there is with --partial`,
    );
  }
  if (missing.length > 0) process.stderr.write(`vitpeft: warning: merging ${grid.jobs.length - missing.length} of ${grid.jobs.length} jobs; missing: ${list}\n`);
  const into = path.resolve(options.into ?? runFolder(path.dirname(grid.shards[0].folder), name));
  const composed = pipeline();
  composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir: into, plots: options.plots, interactive: false, err: () => undefined } });
  await lastValueFrom(mergeShards(grid, into, composed.stages.reporter), { defaultValue: undefined });
  if (options.out) writeFileAtomic(options.out, fs.readFileSync(path.join(into, 'results.csv')));
  process.stderr.write(`vitpeft: merged ${grid.jobs.length - missing.length} job(s) of '${name}' from ${grid.shards.length} of ${grid.count} shard folder(s) into ${into}\n`);
}

/** Unrelated runs (not shards of one grid): their rows in one table. */
function mergeRuns(dirs: string[], options: MergeOptions): void {
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
  if (options.out && path.basename(options.out) === 'results.csv') writeReport(path.dirname(path.resolve(options.out)));
}

export function mergeCommand(): Command {
  return new Command('merge')
    .description('merge the shard folders of one grid (vitpeft run --shard) into the whole run, or show several runs in one table')
    .argument('<dirs...>', 'shard folders (out/<name>-shard<i>of<n>), or out/<name> for all the shard folders beside it, or run folders')
    .option('--into <dir>', 'where the merged run goes (default: <out>/<name> beside the shards, where an unsharded run would write)')
    .option('--partial', 'merge even when jobs are missing (they are named on stderr)')
    .option('--no-plots', 'do not draw the SVG plots')
    .option('--out <file>', 'also write the merged results.csv here')
    .action(async (dirs: string[], options: MergeOptions) => {
      const beside = dirs.length === 1 ? shardsBeside(dirs[0]) : [];
      if (beside.length > 0) await mergeGrid(beside, { ...options, into: options.into ?? dirs[0] });
      else if (dirs.length === 1 && !fs.existsSync(dirs[0])) throw new UsageError(`${dirs[0]}: no such folder, and no shard folders ${path.basename(dirs[0])}-shard<i>of<n> beside it`);
      else if (dirs.some(isShardFolder)) await mergeGrid(dirs, options);
      else {
        if (options.into !== undefined || options.partial) throw new UsageError('--into and --partial merge the shards of a grid; these folders are not shards (their run.json records no --shard)');
        mergeRuns(dirs, options);
      }
    });
}
