// `vitpeft run --workers N`: how many workers a run gets, and the parallel run itself on the toy
// pipeline: the merged folder equals a single process's run (results.csv byte for byte), a stop
// signal checkpoints every worker and --resume finishes the run to the same files, and workers
// whose parent was killed stop themselves; a worker that dies is named after the others are merged.

import { ChildProcess, spawn } from 'child_process';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { UsageError } from '../../cli/errors';
import { WORKERS_ENV, WORKER_PARENT_ENV, WorkerContext, parseWorkers, planWorkers, watchParent, workersOption } from '../../cli/workers';
import { readCsv } from '../../stages/reporter/csvLog';
import { REPO_ROOT, runCli } from '../helpers/cli';
import { tempFolder } from '../helpers/datasetFixtures';
import { PipelineFixture, pipelineFixture } from '../helpers/pipelineFixtures';
import { INTERRUPTIBLE, expectSameRun, rowCount } from '../reliability/helpers';

const GIB = 1024 ** 3;
const twoCores: WorkerContext = { jobs: 9, cores: 2, memory: 24 * GIB, backend: 'auto', native: false };

describe('vitpeft run --workers: how many', () => {
  it('auto: a worker per core on wasm, one thread each, no more than the jobs or than memory holds wasm heaps', () => {
    expect(planWorkers('auto', twoCores)).to.include({ workers: 2, threads: 1 });
    expect(planWorkers('auto', { ...twoCores, cores: 16 })).to.include({ workers: 4, threads: 4 }, '24 GiB hold 4 wasm heaps');
    expect(planWorkers('auto', { ...twoCores, cores: 16, memory: 128 * GIB })).to.include({ workers: 9, threads: 1 }, 'no more workers than jobs');
    expect(planWorkers('auto', { ...twoCores, jobs: 1 }).workers).to.equal(1);
    expect(planWorkers('auto', { ...twoCores, cores: 1 }).workers).to.equal(1);
    expect(planWorkers('auto', { ...twoCores, memory: 4 * GIB }).workers).to.equal(1);
    expect(planWorkers('auto', { ...twoCores, threads: 2 })).to.include({ workers: 2, threads: 2 }, 'explicit threads are kept');
  });

  it('auto: one process on native TensorFlow and on the cpu backend, which use the cores their own way', () => {
    expect(planWorkers('auto', { ...twoCores, native: true }).workers).to.equal(1);
    expect(planWorkers('auto', { ...twoCores, backend: 'tensorflow' }).workers).to.equal(1);
    expect(planWorkers('auto', { ...twoCores, backend: 'cpu' }).workers).to.equal(1);
    expect(planWorkers('auto', { ...twoCores, backend: 'wasm', native: true }).workers, '--backend wasm asked for').to.equal(2);
  });

  it('a count is taken as given (at most one worker a job); --shard and --serve stay in one process, and refuse a count', () => {
    expect(planWorkers(3, { ...twoCores, native: true })).to.include({ workers: 3, threads: 1 });
    expect(planWorkers(4, { ...twoCores, jobs: 2 }).workers).to.equal(2);
    expect(planWorkers('auto', { ...twoCores, singleProcessBecause: '--shard' }).workers).to.equal(1);
    expect(() => planWorkers(2, { ...twoCores, singleProcessBecause: '--serve' })).to.throw(UsageError, '--workers 2: --serve runs in one process');
    expect(planWorkers(1, { ...twoCores, singleProcessBecause: '--serve' }).workers).to.equal(1);
  });

  it('parses --workers and VITPEFT_WORKERS, naming the one that is wrong', () => {
    expect(parseWorkers('auto')).to.equal('auto');
    expect(parseWorkers('3')).to.equal(3);
    for (const bad of ['0', '-1', 'two', '1.5']) expect(() => parseWorkers(bad)).to.throw(UsageError, `--workers: expected auto or an integer in [1, 256], got '${bad}'`);
    expect(workersOption(undefined, {})).to.equal('auto');
    expect(workersOption(undefined, { [WORKERS_ENV]: '2' })).to.equal(2);
    expect(workersOption(3, { [WORKERS_ENV]: '2' })).to.equal(3);
    expect(() => workersOption(undefined, { [WORKERS_ENV]: 'many' })).to.throw(UsageError, `${WORKERS_ENV}: expected auto`);
  });

  it('a worker whose parent is gone sends itself SIGTERM (it then stops with a checkpoint)', async () => {
    const received = new Promise<string>((resolve) => process.once('SIGTERM', () => resolve('SIGTERM')));
    const stop = watchParent({ [WORKER_PARENT_ENV]: String(process.ppid + 1_000_000) }, 5);
    try {
      expect(await Promise.race([received, new Promise((resolve) => setTimeout(() => resolve('nothing'), 2000))])).to.equal('SIGTERM');
    } finally {
      stop();
    }
    const unwatched = watchParent({}, 5);
    unwatched();
  });
});

/** Starts the CLI; resolves when it exits. `onOutput` sees stderr as it comes. */
function startCli(args: string[], onStart: (child: ChildProcess) => void = () => undefined): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'vitpeft.js'), '--backend', 'wasm', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (data) => (stderr += data));
    const guard = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stderr });
    });
    onStart(child);
  });
}

/** Calls `act` once `file` has at least `rows` data rows. */
function whenRows(file: string, rows: number, act: () => void): () => void {
  const poll = setInterval(() => {
    if (rowCount(file) >= rows) {
      clearInterval(poll);
      act();
    }
  }, 5);
  return () => clearInterval(poll);
}

/** Processes whose environment names `parent` as their vitpeft parent (Linux /proc). */
function workersOf(parent: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`${WORKER_PARENT_ENV}=${parent}`)) found.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return found;
}

describe('vitpeft run --workers 2 on the toy pipeline (child processes)', function () {
  this.timeout(300_000);
  let fixture: PipelineFixture;
  let reference: string;
  const args = (out: string, workers: string) => ['run', fixture.file, '--out', out, '--seeds', '2', '--workers', workers];

  before(async () => {
    fixture = await pipelineFixture(INTERRUPTIBLE);
    const out = tempFolder('vitpeft-workers-reference-');
    const result = runCli(['--backend', 'wasm', ...args(out, '1')]);
    expect(result.status, result.stderr).to.equal(0);
    reference = path.join(out, 'toy');
  });

  it('writes what one process writes: results.csv and summary.csv byte for byte, the rows of every CSV, the models', () => {
    const out = tempFolder('vitpeft-workers-');
    const result = runCli(['--backend', 'wasm', ...args(out, '2')]);
    expect(result.status, result.stderr).to.equal(0);
    const run = path.join(out, 'toy');
    expect(result.stderr).to.include(`vitpeft: 2 worker processes, 1 thread each (--workers 2); shards in ${path.join(run, 'workers')}`);
    expect(result.stderr).to.match(/\[worker 1\/2\] \[lora-r2 seed 0\] done in/);
    expect(result.stderr).to.include(`vitpeft: 6 of 6 job(s) merged into ${run}`);
    expectSameRun(run, reference);
    expect(fs.readFileSync(path.join(run, 'summary.csv'), 'utf8')).to.equal(fs.readFileSync(path.join(reference, 'summary.csv'), 'utf8'));
    expect(fs.readdirSync(path.join(run, 'models')).sort()).to.deep.equal(fs.readdirSync(path.join(reference, 'models')).sort());
    expect(result.stdout, 'the merged table, once').to.match(/^toy: /m);
    expect(result.stdout.match(/^pretrained /gm)).to.have.length(1);
    expect(fs.readdirSync(path.join(run, 'workers')).sort()).to.deep.equal(['toy-shard1of2', 'toy-shard2of2']);
    expect(fs.existsSync(path.join(run, 'report.html'))).to.equal(true);
  });

  it('a stop signal checkpoints every worker and exits 130; --resume finishes the same run', async () => {
    const out = tempFolder('vitpeft-workers-stop-');
    const run = path.join(out, 'toy');
    let cancel = () => undefined as void;
    const stopped = await startCli(args(out, '2'), (child) => {
      cancel = whenRows(path.join(run, 'workers', 'toy-shard2of2', 'metrics.csv'), 3, () => child.kill('SIGINT'));
    });
    cancel();
    expect(stopped.code, stopped.stderr).to.equal(130);
    expect(stopped.stderr).to.include('SIGINT: asking 2 worker(s) to stop after their current step');
    expect(stopped.stderr).to.include(`continue with: vitpeft run --resume ${run}`);
    const checkpoints = fs.readdirSync(path.join(run, 'workers', 'toy-shard2of2', 'checkpoints'));
    expect(checkpoints.length, 'the stopped worker left a checkpoint').to.be.greaterThan(0);
    const refused = runCli(['--backend', 'wasm', 'run', '--resume', run, '--workers', '2']);
    expect(refused.status).to.equal(2);
    expect(refused.stderr).to.include('leave out --workers');
    const resumed = runCli(['--backend', 'wasm', 'run', '--resume', run]);
    expect(resumed.status, resumed.stderr).to.equal(0);
    expect(resumed.stderr).to.include('continuing 2 shard(s)');
    expectSameRun(run, reference);
  });

  it('workers whose parent is killed stop themselves with a checkpoint; the same command with --resume auto finishes the run', async () => {
    const out = tempFolder('vitpeft-workers-orphans-');
    const run = path.join(out, 'toy');
    let parent = 0;
    let cancel = () => undefined as void;
    const killed = await startCli(args(out, '2'), (child) => {
      parent = child.pid!;
      cancel = whenRows(path.join(run, 'workers', 'toy-shard1of2', 'metrics.csv'), 2, () => child.kill('SIGKILL'));
    });
    cancel();
    expect(killed.signal).to.equal('SIGKILL');
    const deadline = Date.now() + 30_000;
    while (workersOf(parent).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(workersOf(parent), 'workers still running 30 s after their parent was killed').to.deep.equal([]);
    const results = path.join(run, 'workers', 'toy-shard1of2', 'results.csv');
    const finished = fs.existsSync(results) ? readCsv(results).filter((row) => row.method !== 'pretrained' && row.status === 'ok') : [];
    expect(finished.length, 'worker 1 stopped before the end of its 3 jobs').to.be.lessThan(3);
    const resumed = runCli(['--backend', 'wasm', ...args(out, '2'), '--resume', 'auto']);
    expect(resumed.status, resumed.stderr).to.equal(0);
    expectSameRun(run, reference);
  });

  it('a worker that dies (SIGKILL from outside) is named with its signal after the other shard is merged; --resume finishes the run', async () => {
    const out = tempFolder('vitpeft-workers-dead-');
    const run = path.join(out, 'toy');
    let victim = 0;
    let cancel = () => undefined as void;
    const ended = await startCli(args(out, '2'), (child) => {
      cancel = whenRows(path.join(run, 'workers', 'toy-shard2of2', 'metrics.csv'), 2, () => {
        victim = workersOf(child.pid!).find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes('2/2')) ?? 0;
        if (victim) process.kill(victim, 'SIGKILL');
      });
    });
    cancel();
    expect(victim, 'worker 2 found through /proc').to.be.above(0);
    expect(ended.code, ended.stderr).to.equal(1);
    const last = ended.stderr.trim().split('\n').pop()!;
    expect(last).to.match(/worker 2\/2 \(killed by SIGKILL/);
    expect(last).to.match(/(\d) of 6 job\(s\) merged into/);
    expect(last).to.include(`continue with: vitpeft run --resume ${run}`);
    // Worker 1 ran its three jobs to the end, and they are in the run's own results.csv.
    const merged = readCsv(path.join(run, 'results.csv')).filter((row) => row.method !== 'pretrained' && row.status === 'ok');
    expect(merged.length, last).to.be.at.least(3);
    const resumed = runCli(['--backend', 'wasm', 'run', '--resume', run]);
    expect(resumed.status, resumed.stderr).to.equal(0);
    expectSameRun(run, reference);
  });

  it('refuses --workers beside --shard or --serve, in one line', () => {
    const out = tempFolder('vitpeft-workers-refused-');
    for (const extra of [['--shard', '1/2'], ['--serve', '0']]) {
      const result = runCli(['--backend', 'wasm', ...args(out, '2'), ...extra]);
      expect(result.status, result.stderr).to.equal(2);
      expect(result.stderr.trim().split('\n')).to.have.length(1);
      expect(result.stderr).to.include(`--workers 2: ${extra[0]} runs in one process`);
    }
  });
});
