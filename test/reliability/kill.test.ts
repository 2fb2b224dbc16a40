// The command line killed for real: `vitpeft run` on the toy pipeline is stopped with SIGKILL
// after a random number of steps (several times per run, at seeded random points; the kill lands
// wherever the process is then: a step, an evaluation, a checkpoint or results write), resumed
// with `vitpeft run --resume` until it completes, and its results.csv compared byte for byte
// with an uninterrupted run's (metrics, evaluations and saved models too). SIGINT stops
// gracefully with exit code 130.

import { randomFunction } from '../../common/random';
import { ChildProcess, spawn } from 'child_process';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { readCsv } from '../../stages/reporter/csvLog';
import { REPO_ROOT, runCli } from '../helpers/cli';
import { tempFolder } from '../helpers/datasetFixtures';
import { PipelineFixture, pipelineFixture } from '../helpers/pipelineFixtures';
import { INTERRUPTIBLE, TOTAL_STEPS, expectSameRun, rowCount } from './helpers';

const BIN = path.join(REPO_ROOT, 'bin', 'vitpeft.js');
/** The kill points' seed (VITPEFT_KILL_SEED tries others). */
const KILL_SEED = Number(process.env.VITPEFT_KILL_SEED ?? 1);

interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
  /** metrics.csv rows when the signal was sent (undefined if the run ended first). */
  readonly sentAt?: number;
}

/** Runs the CLI and sends `signal` once metrics.csv holds `target` rows (never, for Infinity). */
function runUntil(args: string[], metricsFile: string, target: number, signal: NodeJS.Signals): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [BIN, '--backend', 'wasm', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (data) => (output += data));
    child.stderr!.on('data', (data) => (output += data));
    let sentAt: number | undefined;
    const poll = setInterval(() => {
      const rows = rowCount(metricsFile);
      if (sentAt === undefined && rows >= target) {
        sentAt = rows;
        child.kill(signal);
      }
    }, 2);
    const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('exit', (code, exitSignal) => {
      clearInterval(poll);
      clearTimeout(guard);
      resolve({ code, signal: exitSignal, output, sentAt });
    });
  });
}


describe('vitpeft run killed and resumed (child processes)', function () {
  this.timeout(180_000);
  let fixture: PipelineFixture;
  let reference: string;

  before(async () => {
    fixture = await pipelineFixture(INTERRUPTIBLE);
    const out = tempFolder('vitpeft-reference-');
    const result = runCli(['--backend', 'wasm', 'run', fixture.file, '--out', out, '--no-plots']);
    expect(result.status, result.stderr).to.equal(0);
    reference = path.join(out, 'toy');
  });

  /** Kills the run in runDir with SIGKILL `count` times at seeded random rows of metrics.csv, resuming each time, until it completes. */
  async function killAndResume(runDir: string, seed: number, count: number, args: string[]): Promise<number[]> {
    const random = randomFunction(seed);
    const metrics = path.join(runDir, 'metrics.csv');
    const kills: number[] = [];
    for (let attempt = 0; attempt < count + 4; attempt++) {
      const recorded = rowCount(metrics);
      // Within the next 10 rows, so the kills spread over the methods instead of bunching at the end.
      const target = kills.length < count ? recorded + 1 + Math.floor(random() * Math.min(10, TOTAL_STEPS - recorded)) : Infinity;
      const ended = await runUntil(args, metrics, target, 'SIGKILL');
      if (ended.signal !== 'SIGKILL') {
        expect(ended.code, `after kills at rows ${kills.join(', ')}:\n${ended.output}`).to.equal(0);
        return kills;
      }
      kills.push(ended.sentAt!);
      args = ['run', '--resume', runDir, '--no-plots'];
    }
    throw new Error(`the run did not complete after kills at rows ${kills.join(', ')}`);
  }

  it('SIGINT: the current step finishes, a checkpoint and the results so far are written, exit 130; then SIGKILL twice at random steps: the resumed run equals the uninterrupted one', async () => {
    const runDir = path.join(tempFolder('vitpeft-sigint-'), 'toy');
    const metrics = path.join(runDir, 'metrics.csv');
    const stopped = await runUntil(['run', fixture.file, '--out', path.dirname(runDir), '--no-plots'], metrics, 11, 'SIGINT');
    expect(stopped.code, stopped.output).to.equal(130);
    expect(stopped.output).to.include('SIGINT: stopping after the current step').and.to.include(`continue with: vitpeft run --resume ${runDir}`);
    const results = readCsv(path.join(runDir, 'results.csv'));
    expect(results.map((r) => `${r.method}:${r.status}`)).to.deep.equal(['pretrained:ok', 'full:ok', 'lora-r2:interrupted']);
    // The step in progress when the signal came is the last one: its row, and a checkpoint at it.
    const steps = Number(results[2].steps);
    expect(rowCount(metrics)).to.equal(8 + steps);
    expect(steps).to.be.at.least(stopped.sentAt! - 8);
    expect(fs.existsSync(path.join(runDir, 'checkpoints', 'lora-r2-seed0.safetensors'))).to.equal(true);
    const kills = await killAndResume(runDir, KILL_SEED, 2, ['run', '--resume', runDir, '--no-plots']);
    // eslint-disable-next-line no-console
    console.log(`      SIGINT at metrics row ${stopped.sentAt} (stopped after step ${steps} of lora-r2), then SIGKILL at rows ${kills.join(', ')}`);
    expectSameRun(runDir, reference, `(SIGINT at row ${stopped.sentAt}, then killed at rows ${kills.join(', ')})`);
  });

  it('SIGKILL three times at random steps, resumed each time: results.csv equals the uninterrupted run\'s byte for byte', async () => {
    const runDir = path.join(tempFolder('vitpeft-sigkill-'), 'toy');
    const kills = await killAndResume(runDir, KILL_SEED + 1, 3, ['run', fixture.file, '--out', path.dirname(runDir), '--no-plots']);
    expect(kills.length, `kills at rows ${kills.join(', ')}`).to.be.at.least(2);
    // eslint-disable-next-line no-console
    console.log(`      SIGKILL at metrics rows ${kills.join(', ')} of ${TOTAL_STEPS}`);
    expectSameRun(runDir, reference, `(killed at rows ${kills.join(', ')})`);
  });

  it('--resume refuses a folder that is not a run, and a pipeline file other than the saved one', () => {
    const empty = tempFolder('vitpeft-notarun-');
    const notRun = runCli(['run', '--resume', empty]);
    expect(notRun.status).to.equal(1);
    expect(notRun.stderr).to.include(`${empty}: no run.json here: not a run folder`);
    const changed = path.join(fixture.folder, 'changed.json');
    fs.writeFileSync(changed, JSON.stringify({ ...fixture.spec, train: { ...(fixture.spec.train as object), lr: 0.5 } }));
    const other = runCli(['run', changed, '--resume', reference]);
    expect(other.status).to.equal(2);
    expect(other.stderr).to.include(`${changed} is not the pipeline the run in ${reference} started with (different: train.lr)`);
    const options = runCli(['run', '--resume', reference, '--seeds', '2']);
    expect(options.status).to.equal(2);
    expect(options.stderr).to.include('leave out --seeds');
  });
});
