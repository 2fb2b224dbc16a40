// Evaluations at chosen steps (evaluate.at) beside the regular ones: the first iterations of
// fine-tuning measured where forgetting happens fastest, step 0 being the model before any
// step; they survive a stop and a resume; out-of-order or too-late steps are refused by name.

import { expect } from 'chai';
import * as path from 'path';
import { lastValueFrom, tap } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import { LoadedPipeline, PipelineSpecError, decodePipeline, loadPipelineFile } from '../../pipelines/spec';
import { readCsv } from '../../stages/reporter/csvLog';
import { tempFolder } from '../helpers/datasetFixtures';
import { pipelineFixture } from '../helpers/pipelineFixtures';

async function run(loaded: LoadedPipeline, outDir: string, options: { resume?: boolean; stopAtStep?: number } = {}): Promise<void> {
  const composed = pipeline();
  composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, out: () => undefined, err: () => undefined } });
  const stop = { requested: false };
  await lastValueFrom(
    composed.run(loaded, { outDir, resume: options.resume, stop, saveModels: false }).pipe(
      tap((event) => {
        if (event.kind === 'step' && event.step === options.stopAtStep) stop.requested = true;
      }),
    ),
  );
}

const evalRows = (outDir: string) => readCsv(path.join(outDir, 'evals.csv')).map((row) => `${row.method}@${row.step}: ${row.new_task_accuracy} ${row.retention_k10}`);

describe('evaluate.at: evaluations at chosen steps', function () {
  this.timeout(120_000);

  it('evaluates before the first step and after the listed ones, beside every N; a stopped and resumed run records the same', async () => {
    const fixture = await pipelineFixture({
      methods: [{ method: 'linear' }, { method: 'block', p: 1 }],
      train: { steps: 8, batchSize: 16, optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0, warmupSteps: 2, schedule: 'cosine', seed: 0, checkpointEvery: 3 },
      evaluate: { every: 4, at: [0, 1, 2, 5], batchSize: 32, knn: { k: [5, 10], temperature: 0.07, headline: 10 } },
    });
    const loaded = loadPipelineFile(fixture.file);
    const reference = path.join(tempFolder('vitpeft-at-'), 'toy');
    await run(loaded, reference);
    const steps = readCsv(path.join(reference, 'evals.csv')).map((row) => `${row.method}@${row.step}`);
    expect(steps).to.deep.equal(['pretrained@0', ...['linear', 'block-p1'].flatMap((method) => [0, 1, 2, 4, 5, 8].map((step) => `${method}@${step}`))]);

    const stopped = path.join(tempFolder('vitpeft-at-stop-'), 'toy');
    await run(loaded, stopped, { stopAtStep: 2 });
    await run(loaded, stopped, { resume: true });
    expect(evalRows(stopped)).to.deep.equal(evalRows(reference));
  });

  it('refuses steps out of order and steps past a method\'s last, naming evaluate.at', () => {
    const spec = (at: number[]) => ({
      name: 'x',
      model: { checkpoint: 'm.safetensors' },
      data: { train: 'mnist:train', test: 'mnist:test' },
      preprocess: { size: 28 },
      train: { steps: 10, batchSize: 4, lr: 0.1 },
      evaluate: { at },
      methods: [{ method: 'linear' }, { method: 'full', train: { steps: 6 } }],
    });
    expect(() => decodePipeline(spec([0, 5, 2]), 'p.json')).to.throw(PipelineSpecError, /evaluate\.at\[2\]: 2 does not come after 5/);
    expect(() => decodePipeline(spec([0, 8]), 'p.json')).to.throw(PipelineSpecError, /evaluate\.at: step 8 is past the 6 steps a method trains/);
    expect(decodePipeline(spec([0, 1, 2, 5]), 'p.json').evaluate?.at).to.deep.equal([0, 1, 2, 5]);
  });
});
