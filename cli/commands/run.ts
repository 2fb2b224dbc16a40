// `vitpeft run [PIPELINE]`: runs every method of a pipeline file (the built-in default when none
// is given), streaming CSVs into out/<run>/ and ending with the table and the plots.

import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { lastValueFrom } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import type { ReporterOptions } from '../../stages/reporter/stage';
import { DEFAULT_PIPELINE } from '../../pipelines/builtin';
import { loadPipelineFile } from '../../pipelines/spec';
import { UsageError } from '../errors';
import { startBackend } from '../main';
import { parseInteger } from '../options';

interface RunCommandOptions {
  out: string;
  only?: string[];
  shard?: { index: number; count: number };
  seeds?: number;
  saveModels: boolean;
  plots: boolean;
}

export function parseShard(value: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = match ? Number(match[1]) : NaN;
  const count = match ? Number(match[2]) : NaN;
  if (!match || count < 1 || index < 1 || index > count) throw new UsageError(`--shard: expected i/n with 1 <= i <= n (e.g. 2/4), got '${value}'`);
  return { index, count };
}

/** The run folder: <out>/<name>, with the shard in the name so shards never collide. */
export function runFolder(out: string, name: string, shard?: { index: number; count: number }): string {
  return path.resolve(out, shard ? `${name}-shard${shard.index}of${shard.count}` : name);
}

const GENERATED = ['metrics.csv', 'evals.csv', 'results.csv', 'timings.csv', 'summary.csv', 'spec.json', 'tradeoff.svg', 'forgetting.svg'];

export function runCommand(): Command {
  return new Command('run')
    .description('run every method of a pipeline file (default: the built-in Split-MNIST pipeline) and report the trade-off')
    .argument('[pipeline]', 'a pipeline file (.json or .yaml)', DEFAULT_PIPELINE)
    .option('--out <dir>', 'output root; the run goes to <dir>/<name>', 'out')
    .option('--only <names>', 'run only these methods, comma-separated (e.g. full,lora-r8)', (value: string) => value.split(',').map((name) => name.trim()).filter(Boolean))
    .option('--shard <i/n>', 'run every n-th method x seed, starting at the i-th', parseShard)
    .option('--seeds <n>', 'repeat every method with n seeds (seed, seed+1, ...) and report mean ± std', parseInteger('--seeds', 1, 100))
    .option('--no-save-models', 'do not write trained adapters/checkpoints')
    .option('--no-plots', 'do not draw the SVG plots')
    .action(async (file: string, options: RunCommandOptions, command: Command) => {
      const loaded = loadPipelineFile(file);
      const backend = await startBackend(command);
      const outDir = runFolder(options.out, loaded.spec.name, options.shard);
      for (const name of GENERATED) fs.rmSync(path.join(outDir, name), { force: true });
      const composed = pipeline();
      composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir, plots: options.plots } });
      const events = composed.run(loaded, {
        outDir,
        backend: backend.description,
        only: options.only,
        shard: options.shard,
        seeds: options.seeds,
        saveModels: options.saveModels,
      });
      await lastValueFrom(events, { defaultValue: undefined });
    });
}
