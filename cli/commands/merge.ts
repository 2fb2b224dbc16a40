// `vitpeft merge DIR...`: one table from the results.csv of several runs (the shards of a grid).

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
      if (options.out && path.basename(options.out) === 'results.csv') writeReport(path.dirname(path.resolve(options.out)));
    });
}
