// `vitpeft run [PIPELINE]`: runs every method of a pipeline file (the built-in default when none
// is given), streaming CSVs into out/<run>/ and ending with the table and the plots.
// `vitpeft run --resume out/<run>` continues an interrupted run with the pipeline and options
// saved in its run.json. SIGINT or SIGTERM stops at the end of the current step with a
// checkpoint and the results so far (exit code 130); a second signal exits at once.

import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { lastValueFrom, tap } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import type { PipelineEvent } from '../../common/events';
import { CHECKPOINT_FOLDER, jsonDifferences, readRunRecord, recordedSpec } from '../../pipelines/resume';
import type { RunOptions } from '../../pipelines/job';
import type { ReporterOptions } from '../../stages/reporter/stage';
import { DEFAULT_PIPELINE } from '../../pipelines/builtin';
import { LoadedPipeline, loadPipelineFile } from '../../pipelines/spec';
import { EXIT, InterruptedError, UsageError } from '../errors';
import { startBackend } from '../startBackend';
import { parseInteger } from '../options';
import { EventHub } from '../serve/eventHub';
import { warnIfExposed } from '../serve/hostWarning';
import { DEFAULT_PORT, LiveServer, startLiveServer } from '../serve/liveServer';
import { serveUntilSignal } from '../serve/untilSignal';

interface RunCommandOptions {
  out: string;
  only?: string[];
  shard?: { index: number; count: number };
  seeds?: number;
  saveModels: boolean;
  plots: boolean;
  resume?: string;
  serve?: number | true;
  host: string;
  stay: boolean;
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

const GENERATED = ['metrics.csv', 'evals.csv', 'results.csv', 'timings.csv', 'summary.csv', 'spec.json', 'run.json', 'tradeoff.svg', 'forgetting.svg', 'report.html'];

/** The pipeline and options of the run in `folder`; a pipeline file given as well must be the same pipeline. */
function resumeTarget(folder: string, file: string | undefined, options: RunCommandOptions, command: Command): { loaded: LoadedPipeline; runOptions: Partial<RunOptions>; backend?: string } {
  const given = (['only', 'shard', 'seeds', 'saveModels', 'out'] as const).filter((name) => command.getOptionValueSource(name) === 'cli');
  if (given.length > 0) {
    const flags = given.map((name) => ({ only: '--only', shard: '--shard', seeds: '--seeds', saveModels: '--no-save-models', out: '--out' })[name]);
    throw new UsageError(`--resume continues the run with its own options (saved in ${path.join(folder, 'run.json')}); leave out ${flags.join(', ')}`);
  }
  const record = readRunRecord(folder);
  if (file !== undefined) {
    const current = loadPipelineFile(file);
    const differences = jsonDifferences(record.loaded.spec, recordedSpec(current.spec));
    if (differences.length > 0) {
      throw new UsageError(
        `${file} is not the pipeline the run in ${folder} started with (different: ${differences.join(', ')}); ` +
          `resume without the file to use the saved pipeline, or start a new run`,
      );
    }
  }
  return { loaded: record.loaded, runOptions: { ...record.options, resume: true }, backend: record.backend };
}

/** --serve's optional port; a pipeline file right after --serve would be taken for it. */
function parseServePort(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) > 65535) {
    throw new UsageError(`--serve: expected a port number in [0, 65535], got '${value}' (put the pipeline file before --serve, or give the port: --serve ${DEFAULT_PORT})`);
  }
  return Number(value);
}

/** The live view of this run (and the other runs beside it), fed by the run's own events. */
async function startLive(outDir: string, options: RunCommandOptions): Promise<{ server: LiveServer; hub: EventHub }> {
  const hub = new EventHub();
  const root = path.dirname(outDir);
  warnIfExposed(options.host, root);
  const server = await startLiveServer({ root, host: options.host, port: options.serve === true ? DEFAULT_PORT : options.serve, hubs: new Map([[path.basename(outDir), hub]]) });
  process.stderr.write(`vitpeft: live view at ${server.runUrl(path.basename(outDir))}\n`);
  return { server, hub };
}

export function runCommand(): Command {
  return new Command('run')
    .description('run every method of a pipeline file (default: the built-in Split-MNIST pipeline) and report the trade-off')
    .argument('[pipeline]', `a pipeline file (.json or .yaml; default ${path.relative(process.cwd(), DEFAULT_PIPELINE) || DEFAULT_PIPELINE})`)
    .option('--out <dir>', 'output root; the run goes to <dir>/<name>', 'out')
    .option('--only <names>', 'run only these methods, comma-separated (e.g. full,lora-r8)', (value: string) => value.split(',').map((name) => name.trim()).filter(Boolean))
    .option('--shard <i/n>', 'run every n-th method x seed, starting at the i-th', parseShard)
    .option('--seeds <n>', 'repeat every method with n seeds (seed, seed+1, ...) and report mean ± std', parseInteger('--seeds', 1, 100))
    .option('--no-save-models', 'do not write trained adapters/checkpoints')
    .option('--no-plots', 'do not draw the SVG plots')
    .option('--serve [port]', `serve the live view (report page with curves that grow as the run goes) on this port (default ${DEFAULT_PORT}; 0: any free port)`, parseServePort)
    .option('--host <address>', 'address for --serve to listen on (default 127.0.0.1, this machine only)', '127.0.0.1')
    .option('--stay', 'keep serving the live view after the run ends, until Ctrl-C', false)
    .option('--resume <run-folder>', 'continue an interrupted run (out/<name>): finished methods are kept, the interrupted one continues from its last checkpoint')
    .action(async (file: string | undefined, options: RunCommandOptions, command: Command) => {
      let loaded: LoadedPipeline;
      let outDir: string;
      let runOptions: Partial<RunOptions>;
      let recordedBackend: string | undefined;
      if (options.resume !== undefined) {
        outDir = path.resolve(options.resume);
        ({ loaded, runOptions, backend: recordedBackend } = resumeTarget(outDir, file, options, command));
      } else {
        loaded = loadPipelineFile(file ?? DEFAULT_PIPELINE);
        outDir = runFolder(options.out, loaded.spec.name, options.shard);
        runOptions = { only: options.only, shard: options.shard, seeds: options.seeds, saveModels: options.saveModels };
      }
      const stop = { requested: false };
      const onSignal = (signal: NodeJS.Signals) => {
        if (stop.requested) {
          process.stderr.write(`\nvitpeft: ${signal} again: exiting now; the last checkpoint and every row written so far are kept (vitpeft run --resume ${outDir})\n`);
          process.exit(EXIT.interrupted);
        }
        stop.requested = true;
        process.stderr.write(`\nvitpeft: ${signal}: stopping after the current step to write a checkpoint and the results so far; a second signal exits at once\n`);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let last: PipelineEvent | undefined;
      let live: { server: LiveServer; hub: EventHub } | undefined;
      try {
        const backend = await startBackend(command);
        if (recordedBackend !== undefined && recordedBackend !== backend.description) {
          process.stderr.write(`vitpeft: warning: the run started on backend '${recordedBackend}' and resumes on '${backend.description}'; results equal an uninterrupted run's only on the same backend\n`);
        }
        if (!runOptions.resume) {
          const checkpoints = path.join(outDir, CHECKPOINT_FOLDER);
          if (fs.existsSync(checkpoints) && fs.readdirSync(checkpoints).length > 0) {
            process.stderr.write(`vitpeft: starting '${loaded.spec.name}' afresh in ${outDir}; the interrupted run there is discarded (--resume ${outDir} would have continued it)\n`);
          }
          for (const name of GENERATED) fs.rmSync(path.join(outDir, name), { force: true });
        }
        if (options.serve !== undefined) live = await startLive(outDir, options);
        const composed = pipeline();
        composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir, plots: options.plots } });
        // The live view sees each event after the reporter has written it to the run's files.
        const events = composed.run(loaded, { ...runOptions, outDir, backend: backend.description, stop }).pipe(tap((event) => live?.hub.publish(event)));
        last = await lastValueFrom(events, { defaultValue: undefined });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        if (live && !options.stay) await live.server.close();
      }
      if (live && options.stay) {
        process.stderr.write(`vitpeft: the run has ended; still serving ${live.server.runUrl(path.basename(outDir))} (Ctrl-C stops it)\n`);
        await serveUntilSignal(live.server);
      }
      if (last?.kind === 'run-end' && last.interrupted) {
        throw new InterruptedError(`run interrupted; its checkpoint and results so far are in ${outDir}; continue with: vitpeft run --resume ${outDir}`);
      }
    });
}
