// Pretraining through the job loop: stopped after a chosen step (between checkpoints, once or
// twice) and resumed, it writes the same model file, byte for byte, as an uninterrupted
// pretraining, with the same metrics and evaluations; a resume against another spec or of a
// folder that is not a pretraining is refused naming the file; `vitpeft pretrain` stops on SIGINT
// with exit code 130 and `--resume` finishes the same model.

import * as tf from '@tensorflow/tfjs';
import { spawn } from 'child_process';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { PRETRAIN_RECORD, readPretrainRecord } from '../../pipelines/pretrain';
import { ResumeError } from '../../pipelines/resume';
import { REPO_ROOT, runCli } from '../helpers/cli';
import { tempFolder } from '../helpers/datasetFixtures';
import { toyDataset } from '../helpers/pipelineFixtures';
import { rowCount } from './helpers';
import { csvRowsWithout, runPretraining, stopAfter } from '../helpers/pretrainRun';

const STEPS = 12;

/** A pretraining file on the toy colour data: 12 steps, evaluations every 4, checkpoints every 3. */
function pretrainFixture(overrides: { checkpointEvery?: number } = {}): string {
  const folder = tempFolder('vitpeft-pretrain-');
  toyDataset(path.join(folder, 'train.safetensors'), 64, 'colour', 1);
  toyDataset(path.join(folder, 'test.safetensors'), 32, 'colour', 2);
  const spec = {
    name: 'toy-pretrain',
    architecture: { patchSize: 4, width: 32, depth: 2, heads: 2, mlpHidden: 64 },
    data: { train: 'safetensors:train.safetensors', test: 'safetensors:test.safetensors' },
    preprocess: { size: 16, train: 'native-flip', test: 'native' },
    train: { steps: STEPS, batchSize: 16, optimizer: 'adamw', lr: 0.002, weightDecay: 0.05, warmupSteps: 2, schedule: 'cosine', seed: 3, checkpointEvery: overrides.checkpointEvery ?? 3 },
    evaluate: { every: 4, batchSize: 32 },
    output: 'model.safetensors',
  };
  const file = path.join(folder, 'pretrain.json');
  fs.writeFileSync(file, JSON.stringify(spec));
  return file;
}

function expectSamePretraining(actual: { folder: string; model: string }, expected: { folder: string; model: string }): void {
  expect(fs.readFileSync(actual.model).equals(fs.readFileSync(expected.model)), 'the model file, byte for byte').to.equal(true);
  expect(csvRowsWithout(path.join(actual.folder, 'metrics.csv'), 'images_per_second')).to.deep.equal(csvRowsWithout(path.join(expected.folder, 'metrics.csv'), 'images_per_second'));
  expect(csvRowsWithout(path.join(actual.folder, 'evals.csv'), 'seconds')).to.deep.equal(csvRowsWithout(path.join(expected.folder, 'evals.csv'), 'seconds'));
  expect(fs.readdirSync(path.join(actual.folder, 'checkpoints')), 'checkpoints left').to.deep.equal([]);
}

describe('pretraining stopped and resumed', function () {
  this.timeout(120_000);
  let file: string;
  let reference: { folder: string; model: string };

  before(async () => {
    file = pretrainFixture();
    const folder = path.join(tempFolder('vitpeft-pretrain-ref-'), 'run');
    const result = await runPretraining(file, folder);
    expect(result.status).to.equal('ok');
    const model = path.join(tempFolder('vitpeft-pretrain-model-'), 'reference.safetensors');
    fs.copyFileSync(result.output, model);
    reference = { folder, model };
    expect(csvRowsWithout(path.join(folder, 'evals.csv'), 'seconds').map((row) => row[1])).to.deep.equal(['step=4', 'step=8', 'step=12']);
    expect(rowCount(path.join(folder, 'metrics.csv'))).to.equal(STEPS);
  });

  it('stopped between checkpoints (step 5), then resumed: the same model file, metrics and evaluations; no tensors left', async () => {
    const folder = path.join(tempFolder('vitpeft-pretrain-stop-'), 'run');
    const tensors = tf.memory().numTensors;
    const stopped = await runPretraining(file, folder, { stop: stopAfter(5) });
    expect(tf.memory().numTensors, 'tensors left by a stopped pretraining').to.equal(tensors);
    expect([stopped.status, stopped.steps]).to.deep.equal(['interrupted', 5]);
    expect(stopped.note).to.match(/continue with: vitpeft pretrain --resume /);
    expect(fs.readdirSync(path.join(folder, 'checkpoints'))).to.deep.equal(['pretrain.safetensors']);
    expect(rowCount(path.join(folder, 'metrics.csv'))).to.equal(5);
    const resumed = await runPretraining(file, folder, { resume: true });
    expect(resumed.status).to.equal('ok');
    expectSamePretraining({ folder, model: resumed.output }, reference);
  });

  it('stopped twice (steps 2 and 7) and killed rows past the checkpoint trimmed: still the same model', async () => {
    const folder = path.join(tempFolder('vitpeft-pretrain-twice-'), 'run');
    expect((await runPretraining(file, folder, { stop: stopAfter(2) })).steps).to.equal(2);
    expect((await runPretraining(file, folder, { stop: stopAfter(5), resume: true })).steps).to.equal(7);
    // A kill after the checkpoint leaves rows the checkpoint does not cover: a resume drops them.
    fs.appendFileSync(path.join(folder, 'metrics.csv'), 'toy-pretrain,8,0,1.5,0.001,100\n');
    const resumed = await runPretraining(file, folder, { resume: true });
    expectSamePretraining({ folder, model: resumed.output }, reference);
  });

  it('refuses a resume against another spec, and of a folder that is not a pretraining, naming the file', async () => {
    const folder = path.join(tempFolder('vitpeft-pretrain-changed-'), 'run');
    await runPretraining(file, folder, { stop: stopAfter(3) });
    const record = path.join(folder, PRETRAIN_RECORD);
    const saved = JSON.parse(fs.readFileSync(record, 'utf8'));
    saved.spec.train.lr = 0.01;
    fs.writeFileSync(record, JSON.stringify(saved));
    let error: unknown;
    await runPretraining(file, folder, { resume: true }).catch((e) => (error = e));
    expect(error).to.be.instanceOf(ResumeError);
    expect((error as Error).message).to.match(/pretrain\.safetensors: was written for other settings/);
    expect(() => readPretrainRecord(tempFolder('vitpeft-not-a-run-'))).to.throw(ResumeError, /no pretrain\.json here: not a pretraining folder/);
  });

  it('vitpeft pretrain: SIGINT writes a checkpoint and exits 130; --resume writes the same model', async () => {
    const cliFile = pretrainFixture({ checkpointEvery: 0 });
    const out = tempFolder('vitpeft-pretrain-cli-');
    const folder = path.join(out, 'pretrain-toy-pretrain');
    const ended = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'vitpeft.js'), '--backend', 'wasm', 'pretrain', cliFile, '--out', out], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (data) => (output += data));
      child.stderr.on('data', (data) => (output += data));
      let sent = false;
      const poll = setInterval(() => {
        if (!sent && rowCount(path.join(folder, 'metrics.csv')) >= 3) {
          sent = true;
          child.kill('SIGINT');
        }
      }, 2);
      const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearInterval(poll);
        clearTimeout(guard);
        resolve({ code, output });
      });
    });
    expect(ended.code, ended.output).to.equal(130);
    expect(ended.output).to.match(/continue with: vitpeft pretrain --resume /);
    expect(fs.readdirSync(path.join(folder, 'checkpoints'))).to.deep.equal(['pretrain.safetensors']);
    const resumed = runCli(['--backend', 'wasm', 'pretrain', '--resume', folder]);
    expect(resumed.status, resumed.stderr).to.equal(0);
    const model = path.join(path.dirname(cliFile), 'model.safetensors');
    expect(fs.readFileSync(model).equals(fs.readFileSync(reference.model)), 'the model file after SIGINT and --resume').to.equal(true);
  });
});
