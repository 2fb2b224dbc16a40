// evaluate.linearProbe in a whole run: evals.csv, results.csv and the table get linear-probe
// retention when it is asked for (and a resumed run records the same), nothing changes when it
// is not, and asking for it without a retention bank is one problem naming both fields.

import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { lastValueFrom, tap } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import { LoadedPipeline, PipelineSpecError, decodePipeline, loadPipelineFile } from '../../pipelines/spec';
import { readCsv } from '../../stages/reporter/csvLog';
import { formatTable, summarize } from '../../stages/reporter/table';
import { tempFolder } from '../helpers/datasetFixtures';
import { pipelineFixture } from '../helpers/pipelineFixtures';

async function run(loaded: LoadedPipeline, outDir: string, options: { resume?: boolean; stopAtStep?: number } = {}): Promise<string> {
  const composed = pipeline();
  let table = '';
  composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, report: false, out: (text: string) => (table += text), err: () => undefined } });
  const stop = { requested: false };
  await lastValueFrom(
    composed.run(loaded, { outDir, resume: options.resume, stop, saveModels: false }).pipe(
      tap((event) => {
        if (event.kind === 'step' && event.step === options.stopAtStep) stop.requested = true;
      }),
    ),
  );
  return table;
}

const header = (file: string) => fs.readFileSync(file, 'utf8').split('\n')[0];
const KNN_COLUMNS = 'run,method,seed,step,new_task_accuracy,retention_k5,retention_k10,retention_unplugged_k5,retention_unplugged_k10';

describe('evaluate.linearProbe: linear-probe retention in a run', function () {
  this.timeout(120_000);
  const train = { steps: 4, batchSize: 16, optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0, warmupSteps: 1, schedule: 'cosine', seed: 0, checkpointEvery: 2 };
  const evaluate = { every: 2, batchSize: 32, knn: { k: [5, 10], temperature: 0.07, headline: 10 } };

  it('adds retention_linear to evals.csv, results.csv and the table; a stopped and resumed run records the same', async () => {
    const fixture = await pipelineFixture({ methods: [{ method: 'linear' }, { method: 'full' }], train, evaluate: { ...evaluate, linearProbe: { epochs: 30 } } });
    const loaded = loadPipelineFile(fixture.file);
    const outDir = path.join(tempFolder('vitpeft-probe-run-'), 'toy');
    const table = await run(loaded, outDir);
    expect(header(path.join(outDir, 'evals.csv'))).to.equal(`${KNN_COLUMNS},retention_linear,frozen_head_accuracy,seconds`);
    const evals = readCsv(path.join(outDir, 'evals.csv'));
    expect(evals.map((row) => `${row.method}@${row.step}`)).to.deep.equal(['pretrained@0', 'linear@2', 'linear@4', 'full@2', 'full@4']);
    for (const row of evals) expect(Number(row.retention_linear)).to.be.within(0, 100);
    // Only the head trains under 'linear': the bank's features, and so the fitted probe, are the pretrained model's.
    const baseline = evals[0].retention_linear;
    expect(evals.filter((row) => row.method === 'linear').map((row) => row.retention_linear)).to.deep.equal([baseline, baseline]);

    expect(header(path.join(outDir, 'results.csv'))).to.equal('run,method,seed,trainable_params,new_task_accuracy,new_task_best,retention_accuracy,retention_unplugged,retention_linear,frozen_head_accuracy,mean_accuracy,steps,status,note');
    const results = readCsv(path.join(outDir, 'results.csv'));
    expect(results.map((row) => [row.method, row.retention_linear])).to.deep.equal([
      ['pretrained', baseline],
      ['linear', baseline],
      ['full', evals[4].retention_linear],
    ]);
    expect(table).to.contain('linear probe');
    const spec = JSON.parse(fs.readFileSync(path.join(outDir, 'spec.json'), 'utf8')) as { resolved: { linearProbe: unknown } };
    expect(spec.resolved.linearProbe).to.deep.equal({ epochs: 30, weightDecay: 1e-3 });

    const stopped = path.join(tempFolder('vitpeft-probe-stop-'), 'toy');
    await run(loaded, stopped, { stopAtStep: 3 });
    await run(loaded, stopped, { resume: true });
    const withoutSeconds = (dir: string, name: string) => readCsv(path.join(dir, name)).map((row) => ({ ...row, seconds: '' }));
    expect(withoutSeconds(stopped, 'evals.csv')).to.deep.equal(withoutSeconds(outDir, 'evals.csv'));
    expect(fs.readFileSync(path.join(stopped, 'results.csv'), 'utf8')).to.equal(fs.readFileSync(path.join(outDir, 'results.csv'), 'utf8'));
  });

  it('leaves the columns as they were when it is off (false or absent)', async () => {
    const fixture = await pipelineFixture({ methods: [{ method: 'linear' }], train: { ...train, steps: 2 }, evaluate: { ...evaluate, linearProbe: false } });
    const outDir = path.join(tempFolder('vitpeft-probe-off-'), 'toy');
    const table = await run(loadPipelineFile(fixture.file), outDir);
    expect(header(path.join(outDir, 'evals.csv'))).to.equal(`${KNN_COLUMNS},frozen_head_accuracy,seconds`);
    expect(header(path.join(outDir, 'results.csv'))).to.equal('run,method,seed,trainable_params,new_task_accuracy,new_task_best,retention_accuracy,retention_unplugged,frozen_head_accuracy,mean_accuracy,steps,status,note');
    expect(table).not.to.contain('linear probe');
  });

  it('is refused without a retention bank, and with a malformed setting, naming the field', () => {
    const spec = (linearProbe: unknown, retention = false) => ({
      name: 'x',
      model: { checkpoint: 'm.safetensors' },
      data: { train: 'mnist:train', test: 'mnist:test', ...(retention ? { retention: { bank: 'mnist:train', query: 'mnist:test' } } : {}) },
      preprocess: { size: 28 },
      train: { steps: 10, batchSize: 4, lr: 0.1 },
      evaluate: { linearProbe },
      methods: [{ method: 'linear' }],
    });
    const problems = (input: unknown): string[] => {
      try {
        decodePipeline(input, 'p.json');
      } catch (error) {
        if (error instanceof PipelineSpecError) return [...error.problems];
        throw error;
      }
      return [];
    };
    const noBank = ['evaluate.linearProbe: linear-probe retention is fitted on the retention bank, but data.retention is not given; add data.retention { bank, query } or remove evaluate.linearProbe'];
    expect(problems(spec(true))).to.deep.equal(noBank);
    expect(problems(spec({ epochs: 10 }))).to.deep.equal(noBank);
    expect(problems(spec(false))).to.deep.equal([]);
    expect(problems(spec(true, true))).to.deep.equal([]);
    expect(problems(spec(3, true))).to.deep.equal(['evaluate.linearProbe: expected true, false or an object with keys epochs, weightDecay, got 3']);
    expect(problems(spec({ epochs: 0, lr: 1 }, true))).to.deep.equal(['evaluate.linearProbe.epochs: expected a positive integer, got 0', 'evaluate.linearProbe.lr: unknown key (allowed here: epochs, weightDecay), got 1']);
  });

  it('shows the table\'s linear-probe column as mean ± std over seeds', () => {
    const result = (seed: number, retentionLinear: number) => ({ method: 'full', seed, trainableParams: 10, steps: 4, status: 'ok' as const, newTaskAccuracy: 90, retentionAccuracy: 80, retentionLinear, seconds: 1 });
    const table = formatTable({ title: 't', knnHeadline: 20, baselineRetention: 85, baselineRetentionLinear: 88, rows: summarize([result(0, 70), result(1, 74)]) });
    const [head, , baseline, full] = table.trim().split('\n').slice(1);
    expect(head).to.match(/linear probe/);
    expect(baseline).to.match(/88\.00/);
    expect(full).to.match(/72\.00 ± 2\.83/);
  });
});
