import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { lastValueFrom, toArray } from 'rxjs';
import { container } from 'tsyringe';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import { BASELINE, PipelineEvent } from '../../common/events';
import { loadPipelineFile } from '../../pipelines/spec';
import { readCsv } from '../../stages/reporter/csvLog';
import { RESULT_COLUMNS, ReporterOptions } from '../../stages/reporter/stage';
import type { EvaluationData, EvaluationRequest, EvaluationResult, EvaluatorStage } from '../../stages/evaluator/stage';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { runCli } from '../helpers/cli';
import { tempFolder } from '../helpers/datasetFixtures';
import { PipelineFixture, pipelineFixture } from '../helpers/pipelineFixtures';

function quietReporter(outDir: string, log: string[] = []): ReporterOptions {
  return { outDir, interactive: false, out: (text) => log.push(text), err: (text) => log.push(text) };
}

async function run(fixture: PipelineFixture, outDir: string, overrides: Parameters<typeof pipeline>[0] = {}) {
  const composed = pipeline(overrides);
  const log: string[] = [];
  composed.container.register(TOKENS.reporterOptions, { useValue: quietReporter(outDir, log) });
  const events = await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir, saveModels: false }).pipe(toArray()));
  return { events, log: log.join('') };
}

describe('pipeline end to end (toy data)', function () {
  let fixture: PipelineFixture;
  let outDir: string;
  let events: PipelineEvent[];
  let log: string;

  before(async () => {
    fixture = await pipelineFixture();
    outDir = path.join(fixture.folder, 'out');
    const before = tf.memory().numTensors;
    ({ events, log } = await run(fixture, outDir));
    expect(tf.memory().numTensors, 'tensors left behind by a whole run').to.equal(before);
  });

  it('writes results.csv with the documented columns, a baseline row and one row per method', () => {
    const header = fs.readFileSync(path.join(outDir, 'results.csv'), 'utf8').split('\n')[0];
    expect(header.split(',')).to.deep.equal([...RESULT_COLUMNS]);
    const rows = readCsv(path.join(outDir, 'results.csv'));
    expect(rows.map((r) => r.method)).to.deep.equal([BASELINE, 'full', 'linear', 'top1', 'lora-r2', 'block-p1']);
    expect(rows.every((r) => r.run === 'toy')).to.equal(true);
    expect(rows.slice(1).every((r) => r.status === 'ok')).to.equal(true);
  });

  it('streams one metrics row per step and one evals row per evaluation', () => {
    const metrics = readCsv(path.join(outDir, 'metrics.csv'));
    expect(Object.keys(metrics[0])).to.deep.equal(['run', 'method', 'seed', 'step', 'epoch', 'loss', 'lr', 'images_per_second']);
    expect(metrics).to.have.length(5 * 24);
    const evals = readCsv(path.join(outDir, 'evals.csv'));
    expect(Object.keys(evals[0])).to.deep.equal(['run', 'method', 'seed', 'step', 'new_task_accuracy', 'retention_k5', 'retention_k10', 'retention_unplugged_k5', 'retention_unplugged_k10', 'frozen_head_accuracy', 'seconds']);
    // the baseline, then steps 12 and 24 of each of the 5 methods
    expect(evals.map((r) => `${r.method}@${r.step}`)).to.deep.equal([
      'pretrained@0',
      ...['full', 'linear', 'top1', 'lora-r2', 'block-p1'].flatMap((m) => [`${m}@12`, `${m}@24`]),
    ]);
    expect(fs.existsSync(path.join(outDir, 'tradeoff.svg'))).to.equal(true);
    expect(fs.readFileSync(path.join(outDir, 'forgetting.svg'), 'utf8')).to.match(/^<svg/);
  });

  it("linear probing keeps the pretrained retention exactly (its backbone is frozen)", () => {
    const rows = readCsv(path.join(outDir, 'results.csv'));
    const baseline = rows.find((r) => r.method === BASELINE)!.retention_accuracy;
    expect(baseline).to.not.equal('');
    expect(rows.find((r) => r.method === 'linear')!.retention_accuracy).to.equal(baseline);
    const evals = readCsv(path.join(outDir, 'evals.csv')).filter((r) => r.method === 'linear');
    expect(evals.every((r) => r.retention_k5 === readCsv(path.join(outDir, 'evals.csv'))[0].retention_k5)).to.equal(true);
  });

  it("LoRA and block expansion unplugged give back the pretrained retention exactly", () => {
    const rows = readCsv(path.join(outDir, 'results.csv'));
    const baseline = rows.find((r) => r.method === BASELINE)!.retention_accuracy;
    for (const method of ['lora-r2', 'block-p1']) expect(rows.find((r) => r.method === method)!.retention_unplugged, method).to.equal(baseline);
    for (const method of ['full', 'linear', 'top1']) expect(rows.find((r) => r.method === method)!.retention_unplugged, method).to.equal('');
  });

  it('full fine-tuning learns the separable toy task well above chance', () => {
    const full = readCsv(path.join(outDir, 'results.csv')).find((r) => r.method === 'full')!;
    expect(Number(full.new_task_accuracy)).to.be.at.least(80);
    expect(Number(full.mean_accuracy)).to.be.closeTo((Number(full.new_task_accuracy) + Number(full.retention_accuracy)) / 2, 1e-4);
  });

  it('emits the events in order and prints the table with the baseline first', () => {
    const kinds = events.map((e) => e.kind);
    expect(kinds[0]).to.equal('run-start');
    expect(kinds[1]).to.equal('eval');
    expect(kinds[kinds.length - 1]).to.equal('run-end');
    expect(kinds.filter((k) => k === 'method-end')).to.have.length(5);
    const table = log.slice(log.indexOf('method '));
    expect(table.split('\n')[2]).to.match(/^pretrained\s+0\s/);
    expect(table).to.match(/retention \(k-NN@10\)/);
  });
});

describe('pipeline composition (DI)', () => {
  it('runs with the evaluator swapped for a fake through the container; the other stages still run', async () => {
    const fixture = await pipelineFixture({ methods: [{ method: 'linear' }, { method: 'lora', rank: 2 }], train: { steps: 4, batchSize: 8, lr: 0.01 } });
    const calls: Array<{ newTask: boolean; unplugged: boolean }> = [];
    const fake: EvaluatorStage = {
      async evaluate(model: VisionTransformer, _data: EvaluationData, request: EvaluationRequest): Promise<EvaluationResult> {
        calls.push({ newTask: request.newTask, unplugged: request.unplugged });
        expect(model).to.be.instanceOf(VisionTransformer);
        return { newTaskAccuracy: request.newTask ? 42 : undefined, retention: { 5: 61, 10: 60 }, seconds: 0 };
      },
    };
    const outDir = path.join(fixture.folder, 'out');
    await run(fixture, outDir, { evaluator: fake });
    const rows = readCsv(path.join(outDir, 'results.csv'));
    expect(rows.map((r) => [r.method, r.new_task_accuracy, r.retention_accuracy])).to.deep.equal([
      ['pretrained', '', '60'],
      ['linear', '42', '60'],
      ['lora-r2', '42', '60'],
    ]);
    expect(calls).to.deep.equal([
      { newTask: false, unplugged: false },
      { newTask: true, unplugged: false },
      { newTask: true, unplugged: true },
    ]);
    expect(readCsv(path.join(outDir, 'metrics.csv'))).to.have.length(8);
    expect(container.isRegistered(TOKENS.evaluator)).to.equal(false);
  });
});

describe('vitpeft run with a bad pipeline file', () => {
  it('reports every error with its field path and runs nothing', () => {
    const folder = tempFolder('vitpeft-badspec-');
    const file = path.join(folder, 'bad.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'bad',
        model: { checkpoint: 'm.safetensors', head: 3 },
        data: { train: 'mnist:train' },
        preprocess: { size: -1 },
        train: { steps: 10, batchSize: 8, lr: 'high' },
        methods: [{ method: 'lora' }, { method: 'topk', k: 2, lr: 0.1 }],
      }),
    );
    const result = runCli(['run', file, '--out', path.join(folder, 'out')]);
    expect(result.status).to.not.equal(0);
    for (const problem of [
      'model.head: unknown key',
      'data.test: missing (expected a non-empty string)',
      'preprocess.size: expected a positive integer, got -1',
      'train.lr: expected a positive number, got "high"',
      'methods[0].rank: missing (expected a positive integer)',
      'methods[1].lr: unknown key',
    ]) {
      expect(result.stderr).to.include(problem);
    }
    expect(result.stderr).to.include(`${file}: 6 problems in the pipeline`);
    expect(fs.existsSync(path.join(folder, 'out'))).to.equal(false);
  });
});

describe('vitpeft run --shard and vitpeft merge', () => {
  it('splits the jobs over shards and merges their results into one table', async () => {
    const fixture = await pipelineFixture({ methods: [{ method: 'linear' }, { method: 'lora', rank: 2 }, { method: 'topk', k: 1 }], train: { steps: 2, batchSize: 8, lr: 0.01 }, evaluate: { every: 0, knn: { k: [5] } } });
    const out = path.join(fixture.folder, 'out');
    for (const shard of ['1/2', '2/2']) {
      const result = runCli(['--backend', 'wasm', 'run', fixture.file, '--out', out, '--shard', shard, '--no-save-models', '--no-plots']);
      expect(result.status, result.stderr).to.equal(0);
    }
    const first = readCsv(path.join(out, 'toy-shard1of2', 'results.csv')).map((r) => r.method);
    const second = readCsv(path.join(out, 'toy-shard2of2', 'results.csv')).map((r) => r.method);
    expect(first).to.deep.equal([BASELINE, 'linear', 'top1']);
    expect(second).to.deep.equal([BASELINE, 'lora-r2']);
    const merged = path.join(out, 'merged.csv');
    const result = runCli(['merge', path.join(out, 'toy-shard1of2'), path.join(out, 'toy-shard2of2'), '--out', merged]);
    expect(result.status, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/retention \(k-NN@5\)/);
    // in the order an unsharded run writes them
    expect(readCsv(merged).map((r) => r.method)).to.deep.equal([BASELINE, 'linear', 'lora-r2', 'top1']);
    expect(runCli(['run', fixture.file, '--shard', '3/2']).stderr).to.match(/--shard: expected i\/n with 1 <= i <= n/);
  });
});
