// `vitpeft run [PIPELINE]`: runs every method of a pipeline file (the built-in default when none
// is given), streaming CSVs into out/<run>/ and ending with the table and the plots.
// `vitpeft run --resume out/<run>` continues an interrupted run with the pipeline and options
// saved in its run.json; `--resume auto` continues the run these options name if it was started
// (a requeued scheduler task), and `--shard auto` takes the shard from a Slurm array or a
// Kubernetes Indexed Job. `--list-jobs` prints the jobs and runs nothing. SIGINT or SIGTERM
// stops at the end of the current step with a checkpoint and the results so far (exit code
// 130); a second signal exits at once.

import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { lastValueFrom, tap } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import type { PipelineEvent } from '../../common/events';
import { CHECKPOINT_FOLDER, RUN_RECORD, RecordedOptions, jsonDifferences, readRunRecord, recordedSpec } from '../../pipelines/resume';
import type { RunOptions } from '../../pipelines/job';
import type { ReporterOptions } from '../../stages/reporter/stage';
import { DEFAULT_PIPELINE } from '../../pipelines/builtin';
import { LoadedPipeline, loadPipelineFile } from '../../pipelines/spec';
import { InterruptedError, UsageError } from '../errors';
import { withStopSignal } from '../stopOnSignal';
import { startBackend } from '../startBackend';
import { parseInteger } from '../options';
import { Shard, ShardError, resolveShard } from '../../pipelines/shardEnvironment';
import { planJobs } from '../../pipelines/job';
import { runFolder } from '../../pipelines/shardGrid';
import { EventHub } from '../serve/eventHub';
import { warnIfExposed } from '../serve/hostWarning';
import { DEFAULT_PORT, LiveServer, startLiveServer } from '../serve/liveServer';
import { serveUntilSignal } from '../serve/untilSignal';
import { THREADS_ENV, resolveThreads } from '../../di/backend';
import type { GlobalOptions } from '../startBackend';
import { ParallelRun, WORKERS_ENV, WORKERS_FOLDER, WorkerPlan, WorkersOption, clearWorkers, machine, parseWorkers, planWorkers, resumeParallel, runParallel, shardArgs, threadsPerWorker, watchParent, workerShardFolders, workersOption } from '../workers';

interface RunCommandOptions {
  out: string;
  only?: string[];
  shard?: Shard;
  seeds?: number;
  saveModels: boolean;
  plots: boolean;
  resume?: string;
  listJobs?: boolean;
  serve?: number | true;
  host: string;
  stay: boolean;
  workers?: WorkersOption;
}

/** `--resume auto`: continue the run in the folder the other options name if it has one, else start it. */
const RESUME_AUTO = 'auto';

/** `--shard i/n`, `auto` or `auto/N` (from the scheduler's environment: pipelines/shardEnvironment.ts). */
export function parseShard(value: string): Shard {
  try {
    return resolveShard(value, process.env);
  } catch (error) {
    if (error instanceof ShardError) throw new UsageError(error.message);
    throw error;
  }
}

const GENERATED = ['metrics.csv', 'evals.csv', 'results.csv', 'timings.csv', 'summary.csv', 'spec.json', 'run.json', 'tradeoff.svg', 'forgetting.svg', 'report.html'];

/** `--resume FOLDER` continues a run with the options it started with: giving others is an error. */
function refuseGivenOptions(folder: string, command: Command, saved: string): void {
  const given = (['only', 'shard', 'seeds', 'saveModels', 'out', 'workers'] as const).filter((name) => command.getOptionValueSource(name) === 'cli');
  if (given.length > 0) {
    const flags = given.map((name) => ({ only: '--only', shard: '--shard', seeds: '--seeds', saveModels: '--no-save-models', out: '--out', workers: '--workers' })[name]);
    throw new UsageError(`--resume continues the run with its own options (saved in ${saved}); leave out ${flags.join(', ')}`);
  }
}

/** The pipeline and options of the run in `folder`; a pipeline file given as well must be the same pipeline. */
function resumeTarget(folder: string, file: string | undefined, command: Command): { loaded: LoadedPipeline; runOptions: Partial<RunOptions>; backend?: string } {
  refuseGivenOptions(folder, command, path.join(folder, RUN_RECORD));
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

/**
 * `--resume auto` (a requeued array task runs the same command again): the run in the folder
 * that the pipeline, --out and --shard name continues when it has a run record, which must
 * record the same pipeline and options; otherwise the run starts there.
 */
function resumeIfStarted(folder: string, loaded: LoadedPipeline, given: RecordedOptions): { runOptions: Partial<RunOptions>; backend?: string } {
  if (!fs.existsSync(path.join(folder, RUN_RECORD))) return { runOptions: { ...given } };
  const record = readRunRecord(folder);
  const differences = [
    ...jsonDifferences(record.loaded.spec, recordedSpec(loaded.spec)),
    ...jsonDifferences({ ...record.options, saveModels: record.options.saveModels ?? true }, { ...given, saveModels: given.saveModels ?? true }),
  ];
  if (differences.length > 0) {
    throw new UsageError(
      `--resume auto: the run in ${folder} was started with another pipeline or options (different: ${differences.join(', ')}); ` +
        `give the same ones, --resume ${folder} to continue it as it was, or another --out to start anew`,
    );
  }
  return { runOptions: { ...record.options, resume: true }, backend: record.backend };
}

/** `--list-jobs`: how many jobs (array tasks) the pipeline has after --only, --seeds and --shard, and which. */
function listJobs(loaded: LoadedPipeline, options: RunCommandOptions): string {
  const jobs = planJobs(loaded.spec, options);
  const scope = options.shard ? ` in shard ${options.shard.index}/${options.shard.count}` : '';
  const lines = jobs.map((job, i) => `${i + 1}\t${job.method}\tseed ${job.seed}\t${job.settings.steps} steps`);
  return `${jobs.length} job(s) in '${loaded.spec.name}'${scope}\n${lines.map((line) => `${line}\n`).join('')}`;
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

/** Threads asked for explicitly: the global --threads, else VITPEFT_THREADS. */
function explicitThreads(command: Command): number | undefined {
  const { threads } = command.optsWithGlobals<GlobalOptions>();
  if (threads !== undefined) return threads;
  const fromEnv = process.env[THREADS_ENV];
  if (fromEnv === undefined || fromEnv.trim() === '') return undefined;
  try {
    return resolveThreads(undefined);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The global options a worker is started with (its threads come through VITPEFT_THREADS). */
function workerGlobalArgs(command: Command): string[] {
  const { backend, verbose } = command.optsWithGlobals<GlobalOptions>();
  return ['--backend', backend, ...(verbose ? ['--verbose'] : [])];
}

/** How many workers this run gets (one when it must stay in one process). */
function workerPlan(loaded: LoadedPipeline, outDir: string, options: RunCommandOptions, command: Command): WorkerPlan {
  const { backend } = command.optsWithGlobals<GlobalOptions>();
  const facts = machine();
  const started = options.resume === RESUME_AUTO ? workerShardFolders(outDir) : [];
  const singleProcessBecause =
    options.shard !== undefined ? '--shard' :
    options.serve !== undefined ? '--serve' :
    options.resume === RESUME_AUTO && fs.existsSync(path.join(outDir, RUN_RECORD)) ? 'a run started in one process' :
    undefined;
  const requested = workersOption(options.workers);
  const threads = explicitThreads(command);
  // --resume auto continues started shards with their own count.
  if (started.length > 0 && singleProcessBecause === undefined) return { workers: started.length, threads: threadsPerWorker(facts.cores, started.length, threads), reason: `continuing ${started.length} shard(s)` };
  const jobs = planJobs(loaded.spec, { only: options.only, seeds: options.seeds }).length;
  return planWorkers(requested, { jobs, cores: facts.cores, memory: facts.memory, backend, native: facts.native, threads, singleProcessBecause });
}

/** A parallel run of a pipeline file: each worker runs shard i/N of it into <run>/workers. */
function parallelRun(loaded: LoadedPipeline, outDir: string, given: RecordedOptions, plan: WorkerPlan, options: RunCommandOptions, command: Command): ParallelRun {
  const resume = options.resume === RESUME_AUTO;
  if (!resume) {
    const shards = workerShardFolders(outDir);
    if (shards.some((folder) => fs.existsSync(path.join(folder, CHECKPOINT_FOLDER)) && fs.readdirSync(path.join(folder, CHECKPOINT_FOLDER)).length > 0)) {
      process.stderr.write(`vitpeft: starting '${loaded.spec.name}' afresh in ${outDir}; the interrupted run there is discarded (--resume ${outDir} would have continued it)\n`);
    }
    for (const name of GENERATED) fs.rmSync(path.join(outDir, name), { force: true });
    clearWorkers(outDir);
  }
  const file = path.resolve(loaded.file);
  return {
    outDir,
    plan,
    workerArgs: Array.from({ length: plan.workers }, (_, i) => shardArgs(file, outDir, { ...given, index: i + 1, count: plan.workers, resume })),
    globalArgs: workerGlobalArgs(command),
    plots: options.plots,
  };
}

export function runCommand(): Command {
  return new Command('run')
    .description('run every method of a pipeline file (default: the built-in Split-MNIST pipeline) and report the trade-off')
    .argument('[pipeline]', `a pipeline file (.json or .yaml; default ${path.relative(process.cwd(), DEFAULT_PIPELINE) || DEFAULT_PIPELINE})`)
    .option('--out <dir>', 'output root; the run goes to <dir>/<name>', 'out')
    .option('--only <names>', 'run only these methods, comma-separated (e.g. full,lora-r8)', (value: string) => value.split(',').map((name) => name.trim()).filter(Boolean))
    .option('--shard <i/n|auto|auto/N>', 'run every n-th method x seed, starting at the i-th; auto: i and n from a Slurm array or a Kubernetes Indexed Job (N or $VITPEFT_SHARDS: the count, which Kubernetes does not give)', parseShard)
    .option('--seeds <n>', 'repeat every method with n seeds (seed, seed+1, ...) and report mean ± std', parseInteger('--seeds', 1, 100))
    .option('--no-save-models', 'do not write trained adapters/checkpoints')
    .option('--no-plots', 'do not draw the SVG plots')
    .option('--resume <run-folder|auto>', "continue an interrupted run (out/<name>): finished methods are kept, the interrupted one continues from its last checkpoint; auto: continue the run these options name if it was started, else start it (a requeued array task)")
    .option('--list-jobs', 'print the number of jobs (method x seed, after --only, --seeds and --shard) and their names, and run nothing')
    .option('--serve [port]', `serve the live view (report page with curves that grow as the run goes) on this port (default ${DEFAULT_PORT}; 0: any free port)`, parseServePort)
    .option('--host <address>', 'address for --serve to listen on (default 127.0.0.1, this machine only)', '127.0.0.1')
    .option('--stay', 'keep serving the live view after the run ends, until Ctrl-C', false)
    .option('--workers <n|auto>', `run the jobs in n processes on this machine, as shards merged into the run folder (default: $${WORKERS_ENV}, else auto: a process per core on the wasm backend, whose kernels at small shapes use one core each; 1: one process)`, (value: string) => parseWorkers(value))
    .action(async (file: string | undefined, options: RunCommandOptions, command: Command) => {
      let loaded: LoadedPipeline;
      let outDir: string;
      let runOptions: Partial<RunOptions>;
      let recordedBackend: string | undefined;
      if (options.listJobs) {
        if (options.resume !== undefined) throw new UsageError('--list-jobs: lists the jobs of a pipeline file; leave out --resume');
        process.stdout.write(listJobs(loadPipelineFile(file ?? DEFAULT_PIPELINE), options));
        return;
      }
      if (options.resume !== undefined && options.resume !== RESUME_AUTO) {
        outDir = path.resolve(options.resume);
        const shards = fs.existsSync(path.join(outDir, RUN_RECORD)) ? [] : workerShardFolders(outDir);
        if (shards.length > 0) {
          // A run its workers started: each shard continues with the options saved in its run.json.
          refuseGivenOptions(outDir, command, path.join(outDir, WORKERS_FOLDER, '*', RUN_RECORD));
          if (file !== undefined) throw new UsageError(`--resume ${options.resume}: a run of worker shards continues with the pipeline saved in each shard; leave out the pipeline file`);
          const threads = threadsPerWorker(machine().cores, shards.length, explicitThreads(command));
          await runParallel(resumeParallel(outDir, shards, workerGlobalArgs(command), options.plots, threads));
          return;
        }
        ({ loaded, runOptions, backend: recordedBackend } = resumeTarget(outDir, file, command));
      } else {
        loaded = loadPipelineFile(file ?? DEFAULT_PIPELINE);
        outDir = runFolder(options.out, loaded.spec.name, options.shard);
        const given: RecordedOptions = { only: options.only, shard: options.shard, seeds: options.seeds, saveModels: options.saveModels };
        ({ runOptions, backend: recordedBackend } = options.resume === RESUME_AUTO ? resumeIfStarted(outDir, loaded, given) : { runOptions: given });
        if (options.shard && planJobs(loaded.spec, runOptions).length === 0) {
          process.stderr.write(`vitpeft: shard ${options.shard.index}/${options.shard.count} of '${loaded.spec.name}' has no jobs (vitpeft run --list-jobs counts them); nothing to run\n`);
          return;
        }
        const plan = workerPlan(loaded, outDir, options, command);
        if (plan.workers > 1) {
          await runParallel(parallelRun(loaded, outDir, given, plan, options, command));
          return;
        }
      }
      const live: { current?: { server: LiveServer; hub: EventHub } } = {};
      let last: PipelineEvent | undefined;
      try {
        last = await withStopSignal(`vitpeft run --resume ${outDir}`, async (stop): Promise<PipelineEvent | undefined> => {
          // A worker of a parallel run stops (with its checkpoint) when its parent is gone.
          const unwatch = watchParent();
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
            clearWorkers(outDir);
          }
          if (options.serve !== undefined) live.current = await startLive(outDir, options);
          const composed = pipeline();
          composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir, plots: options.plots } });
          // The live view sees each event after the reporter has written it to the run's files.
          const events = composed.run(loaded, { ...runOptions, outDir, backend: backend.description, stop }).pipe(tap((event) => live.current?.hub.publish(event)));
          return lastValueFrom(events, { defaultValue: undefined }).finally(unwatch);
        });
      } finally {
        if (live.current && !options.stay) await live.current.server.close();
      }
      if (live.current && options.stay) {
        process.stderr.write(`vitpeft: the run has ended; still serving ${live.current.server.runUrl(path.basename(outDir))} (Ctrl-C stops it)\n`);
        await serveUntilSignal(live.current.server);
      }
      if (last?.kind === 'run-end' && last.interrupted) {
        throw new InterruptedError(`run interrupted; its checkpoint and results so far are in ${outDir}; continue with: vitpeft run --resume ${outDir}`);
      }
    });
}
