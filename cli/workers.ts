// `vitpeft run --workers N`: the run's jobs spread over N child processes on this machine, each
// a shard of the grid (`vitpeft run --shard i/N`, the same code a Slurm array runs) with its own
// backend and thread count, then merged into the run's folder as `vitpeft merge` does, so
// results.csv is byte for byte the one a single process writes. It pays where one process
// cannot use the cores: the wasm backend's kernels at small shapes are mostly single-threaded
// (the default's training step is no faster with 2 threads than with 1), so two 1-thread
// processes do more than one 2-thread process (1.37x on the default on 2 cores: side by side
// they share caches and memory bandwidth).
//
// The shards live in <run>/workers/<name>-shard<i>of<N>; each keeps its own checkpoints, so
// `vitpeft run --resume <run>` (or the same command with --resume auto) continues every shard
// where it stopped. A stop signal reaches each worker once (they run in their own process
// groups): each writes its checkpoint, and what finished is merged before the run exits 130. A
// worker that fails does not lose the others' results: they are merged, and the error names it.

import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createInterface } from 'readline';
import { lastValueFrom } from 'rxjs';
import { THREADS_ENV, cpuCores, nativeInstalled } from '../di/backend';
import { TOKENS } from '../di/tokens';
import { pipeline } from '../pipelines/composer';
import { mergeShards, missingJobs } from '../pipelines/mergeShards';
import type { RecordedOptions } from '../pipelines/resume';
import { isShardFolder, readShardGrid } from '../pipelines/shardGrid';
import type { ReporterOptions } from '../stages/reporter/stage';
import { EXIT, InterruptedError, UsageError } from './errors';

/** Where a parallel run keeps its shards, inside the run's folder. */
export const WORKERS_FOLDER = 'workers';

/** The default of --workers when the option is not given (`auto` when this is unset). */
export const WORKERS_ENV = 'VITPEFT_WORKERS';

/** Set in a worker's environment to its parent's pid: a worker whose parent is gone stops itself. */
export const WORKER_PARENT_ENV = 'VITPEFT_WORKER_PARENT';

/** What `--workers` asks for: a count, or `auto`. */
export type WorkersOption = number | 'auto';

export interface WorkerContext {
  /** Jobs in the run (after --only and --seeds). */
  readonly jobs: number;
  readonly cores: number;
  /** Bytes of memory on the machine. */
  readonly memory: number;
  /** The backend asked for (global --backend). */
  readonly backend: string;
  /** Whether TensorFlow's native library is installed (the `auto` backend would take it). */
  readonly native: boolean;
  /** Threads asked for explicitly (--threads or VITPEFT_THREADS), if any. */
  readonly threads?: number;
  /** Why this run must stay in one process (--shard, --serve), if it must. */
  readonly singleProcessBecause?: string;
}

export interface WorkerPlan {
  readonly workers: number;
  /** wasm threads per worker. */
  readonly threads: number;
  /** Why one process, or how the count was chosen (for the log line). */
  readonly reason: string;
}

/** Threads for each of `workers` processes: those asked for explicitly, else the cores shared out (at least 1). */
export function threadsPerWorker(cores: number, workers: number, explicit?: number): number {
  return explicit ?? Math.max(1, Math.floor(cores / workers));
}

/** A wasm process can grow its heap to 4 GiB; with Node's own memory, plan 5 GiB a worker. */
const BYTES_PER_WORKER = 5 * 1024 ** 3;

/**
 * How many worker processes and threads each. `auto` runs in parallel only on the wasm backend
 * (native TensorFlow and the cpu backend use the cores their own way), with a worker per core,
 * no more than the jobs and no more than memory holds at the wasm heap's ceiling. An explicit
 * count is taken as given, except where a run must stay in one process.
 */
export function planWorkers(requested: WorkersOption, context: WorkerContext): WorkerPlan {
  const one = (reason: string): WorkerPlan => ({ workers: 1, threads: context.threads ?? context.cores, reason });
  if (context.singleProcessBecause !== undefined) {
    if (requested !== 'auto' && requested > 1) throw new UsageError(`--workers ${requested}: ${context.singleProcessBecause} runs in one process; leave out --workers or give --workers 1`);
    return one(context.singleProcessBecause);
  }
  if (requested !== 'auto') {
    const workers = Math.min(requested, Math.max(1, context.jobs));
    return { workers, threads: threadsPerWorker(context.cores, workers, context.threads), reason: `--workers ${requested}` };
  }
  if (context.backend === 'cpu') return one('the cpu backend');
  if (context.backend === 'tensorflow' || (context.backend === 'auto' && context.native)) return one('native TensorFlow uses every core itself');
  if (context.jobs < 2) return one('one job');
  const byMemory = Math.max(1, Math.floor(context.memory / BYTES_PER_WORKER));
  const workers = Math.max(1, Math.min(context.cores, context.jobs, byMemory));
  if (workers < 2) return one(context.cores < 2 ? 'one core' : 'memory for one wasm heap');
  return { workers, threads: threadsPerWorker(context.cores, workers, context.threads), reason: `auto: ${context.cores} cores, ${context.jobs} jobs` };
}

/** `--workers <n|auto>` (or VITPEFT_WORKERS, named as `source`). */
export function parseWorkers(value: string, source = '--workers'): WorkersOption {
  if (value.trim() === 'auto') return 'auto';
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1 || Number(value) > 256) throw new UsageError(`${source}: expected auto or an integer in [1, 256], got '${value}'`);
  return Number(value);
}

/** --workers as given, else VITPEFT_WORKERS, else auto. */
export function workersOption(given: WorkersOption | undefined, env: NodeJS.ProcessEnv = process.env): WorkersOption {
  if (given !== undefined) return given;
  const fromEnv = env[WORKERS_ENV];
  return fromEnv === undefined || fromEnv.trim() === '' ? 'auto' : parseWorkers(fromEnv, WORKERS_ENV);
}

/**
 * In a worker (its environment names the parent): once the parent is gone (killed, say), the
 * worker sends itself SIGTERM, so it stops after its step with a checkpoint instead of running
 * on unwatched or dying on a write to a closed pipe. Returns the function that stops watching.
 */
export function watchParent(env: NodeJS.ProcessEnv = process.env, intervalMs = 200): () => void {
  const parent = Number(env[WORKER_PARENT_ENV]);
  if (!Number.isSafeInteger(parent) || parent <= 0) return () => undefined;
  // The parent's end closes the pipes of our stdout and stderr: a write to them must not kill
  // the worker before it has stopped cleanly.
  const ignore = () => undefined;
  process.stdout.on('error', ignore);
  process.stderr.on('error', ignore);
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      process.kill(process.pid, 'SIGTERM');
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The shard folders of a parallel run in `outDir`, in shard order (none when it ran in one process). */
export function workerShardFolders(outDir: string): string[] {
  const root = path.join(outDir, WORKERS_FOLDER);
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .map((name) => path.join(root, name))
    .filter((folder) => isShardFolder(folder))
    .sort((a, b) => shardIndex(a) - shardIndex(b));
}

function shardIndex(folder: string): number {
  const match = /-shard(\d+)of\d+$/.exec(folder);
  return match ? Number(match[1]) : 0;
}

/** A parallel run: its folder, and what each worker is told (a fresh or continued shard). */
export interface ParallelRun {
  readonly outDir: string;
  readonly plan: WorkerPlan;
  /** Each worker's arguments after `vitpeft [global options] run`. */
  readonly workerArgs: readonly (readonly string[])[];
  /** The global options every worker gets (--backend, --verbose). */
  readonly globalArgs: readonly string[];
  readonly plots: boolean;
}

/** The arguments of shard i/N of a run from a pipeline file with the given options. */
export function shardArgs(file: string, outDir: string, options: RecordedOptions & { index: number; count: number; resume: boolean }): string[] {
  const args = [file, '--out', path.join(outDir, WORKERS_FOLDER), '--shard', `${options.index}/${options.count}`, '--no-plots'];
  if (options.only) args.push('--only', options.only.join(','));
  if (options.seeds !== undefined) args.push('--seeds', String(options.seeds));
  if (options.saveModels === false) args.push('--no-save-models');
  if (options.resume) args.push('--resume', 'auto');
  return args;
}

/** The CLI's entry script, for the workers (bin/vitpeft.js beside dist/). */
function entryScript(): string {
  return path.resolve(__dirname, '..', '..', 'bin', 'vitpeft.js');
}

interface WorkerExit {
  readonly index: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly lastLine?: string;
}

/** Lines from a worker's stream, each prefixed with the worker's name. */
function forwardLines(stream: NodeJS.ReadableStream | null, prefix: string, write: (line: string) => void, keepLast: (line: string) => void): void {
  if (!stream) return;
  createInterface({ input: stream }).on('line', (line) => {
    // A worker's stderr is a pipe, so it prints plain progress lines, never a bar; blank ones are dropped.
    if (line.trim() === '') return;
    keepLast(line);
    write(`${prefix}${line}\n`);
  });
}

function startWorker(run: ParallelRun, index: number, env: NodeJS.ProcessEnv, write: (text: string) => void, exits: (exit: WorkerExit) => void): ChildProcess {
  const args = [entryScript(), ...run.globalArgs, 'run', ...run.workerArgs[index]];
  // Its own process group: a terminal's Ctrl-C reaches the parent alone, which passes it on once.
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let lastLine: string | undefined;
  const prefix = `[worker ${index + 1}/${run.plan.workers}] `;
  // A worker's stdout is its shard's table, which the merged table replaces.
  child.stdout?.resume();
  forwardLines(child.stderr, prefix, write, (line) => {
    lastLine = line;
  });
  child.on('error', (error) => {
    lastLine = error.message;
  });
  child.on('close', (code, signal) => exits({ index, code, signal, lastLine }));
  return child;
}

/** Runs the workers to their end; a first stop signal is passed to each once, a second kills them. */
async function runWorkers(run: ParallelRun, write: (text: string) => void): Promise<WorkerExit[]> {
  const env = { ...process.env, [THREADS_ENV]: String(run.plan.threads), [WORKER_PARENT_ENV]: String(process.pid), [WORKERS_ENV]: '1' };
  const exits: WorkerExit[] = [];
  const children: ChildProcess[] = [];
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    const running = children.filter((child) => child.exitCode === null && child.signalCode === null);
    if (signals === 1) write(`\nvitpeft: ${signal}: asking ${running.length} worker(s) to stop after their current step and write a checkpoint; a second signal stops them at once\n`);
    else write(`\nvitpeft: ${signal} again: stopping the workers now; their last checkpoints and every row written are kept\n`);
    for (const child of running) child.kill(signals === 1 ? signal : 'SIGKILL');
  };
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAll);
  try {
    await new Promise<void>((resolve) => {
      for (let i = 0; i < run.plan.workers; i++) {
        children.push(
          startWorker(run, i, env, write, (exit) => {
            exits.push(exit);
            if (exits.length === run.plan.workers) resolve();
          }),
        );
      }
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', killAll);
  }
  return exits.sort((a, b) => a.index - b.index);
}

/** Trained models of the shards, linked (or copied) into the run's models/ folder. */
function gatherModels(shards: readonly string[], outDir: string): void {
  for (const shard of shards) {
    const from = path.join(shard, 'models');
    if (!fs.existsSync(from)) continue;
    const into = path.join(outDir, 'models');
    fs.mkdirSync(into, { recursive: true });
    for (const name of fs.readdirSync(from)) {
      const target = path.join(into, name);
      fs.rmSync(target, { force: true });
      try {
        fs.linkSync(path.join(from, name), target);
      } catch {
        fs.copyFileSync(path.join(from, name), target);
      }
    }
  }
}

/**
 * Runs the workers, then merges their shards into the run's folder (the table on stdout, the
 * plots and report beside it). Throws InterruptedError when a worker was stopped, and an Error
 * naming the worker when one failed, after merging what the others finished.
 */
export async function runParallel(run: ParallelRun, write: (text: string) => void = (text) => process.stderr.write(text)): Promise<void> {
  const { outDir, plan } = run;
  write(`vitpeft: ${plan.workers} worker processes, ${plan.threads} thread${plan.threads === 1 ? '' : 's'} each (${plan.reason}); shards in ${path.join(outDir, WORKERS_FOLDER)}\n`);
  const exits = await runWorkers(run, write);
  const shards = workerShardFolders(outDir);
  const failed = exits.filter((exit) => exit.code !== EXIT.ok && exit.code !== EXIT.interrupted);
  const interrupted = exits.filter((exit) => exit.code === EXIT.interrupted);
  const resume = `vitpeft run --resume ${outDir}`;
  if (shards.length === 0) throw new Error(`${failed.length > 0 ? describeWorker(failed[0], plan.workers) : 'every worker'} ended before writing its shard`);
  const grid = readShardGrid(shards);
  const missing = missingJobs(grid);
  if (missing.length < grid.jobs.length) {
    const composed = pipeline();
    composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir, plots: run.plots, interactive: false, err: () => undefined } });
    await lastValueFrom(mergeShards(grid, outDir, composed.stages.reporter), { defaultValue: undefined });
    gatherModels(shards, outDir);
  }
  const merged = `${grid.jobs.length - missing.length} of ${grid.jobs.length} job(s) merged into ${outDir}`;
  if (failed.length > 0) {
    throw new Error(`${failed.map((exit) => describeWorker(exit, plan.workers)).join('; ')}; ${merged}; continue with: ${resume}`);
  }
  if (interrupted.length > 0 || missing.length > 0) throw new InterruptedError(`run interrupted; ${merged}; every shard keeps its checkpoint; continue with: ${resume}`);
  write(`vitpeft: ${merged}\n`);
}

/** `worker i/N (exit code C: its last line)`, for the errors. */
function describeWorker(exit: WorkerExit, count: number): string {
  const status = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
  return `worker ${exit.index + 1}/${count} (${status}${exit.lastLine ? `: ${exit.lastLine}` : ''})`;
}

/** The run as workers continue it: each shard folder of `outDir` resumed with its own saved options. */
export function resumeParallel(outDir: string, shards: readonly string[], globalArgs: readonly string[], plots: boolean, threads: number): ParallelRun {
  const count = shards.length;
  return {
    outDir,
    plan: { workers: count, threads, reason: `continuing ${count} shard(s)` },
    workerArgs: shards.map((folder) => ['--resume', folder, '--no-plots']),
    globalArgs,
    plots,
  };
}

/** Machine facts for planWorkers. */
export function machine(): { cores: number; memory: number; native: boolean } {
  return { cores: cpuCores(), memory: os.totalmem(), native: nativeInstalled() };
}

/** A fresh parallel run's folder: the shards of an earlier run there go, as a fresh run's files do. */
export function clearWorkers(outDir: string): void {
  fs.rmSync(path.join(outDir, WORKERS_FOLDER), { recursive: true, force: true });
}

