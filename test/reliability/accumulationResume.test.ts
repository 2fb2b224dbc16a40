// Gradient accumulation through the whole pipeline: train.microBatch reaches the steps (the plan
// line says so), the losses match whole batches within rounding, and a run stopped between
// checkpoints and resumed ends with the files of an uninterrupted run with the same micro-batch.

import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { lastValueFrom, tap, toArray } from 'rxjs';
import { PipelineEvent } from '../../common/events';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import { LoadedPipeline, loadPipelineFile } from '../../pipelines/spec';
import { readCsv } from '../../stages/reporter/csvLog';
import { tempFolder } from '../helpers/datasetFixtures';
import { pipelineFixture } from '../helpers/pipelineFixtures';
import { INTERRUPTIBLE, expectSameRun } from './helpers';

async function run(loaded: LoadedPipeline, outDir: string, options: { resume?: boolean; stopAt?: { method: string; step: number } } = {}): Promise<PipelineEvent[]> {
  const composed = pipeline();
  composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, out: () => undefined, err: () => undefined } });
  const stop = { requested: false };
  return lastValueFrom(
    composed.run(loaded, { outDir, resume: options.resume, stop }).pipe(
      tap((event) => {
        if (options.stopAt && event.kind === 'step' && event.method === options.stopAt.method && event.step === options.stopAt.step) stop.requested = true;
      }),
      toArray(),
    ),
  );
}

describe('gradient accumulation in a run, stopped and resumed', function () {
  this.timeout(120_000);

  it('micro-batches of 5 (batch 16): whole-batch losses within 1e-4, and a stop between checkpoints resumes to the same files', async () => {
    const fixture = await pipelineFixture(INTERRUPTIBLE);
    const accumulatedFile = path.join(fixture.folder, 'accumulated.json');
    const spec = fixture.spec as { train: Record<string, unknown> };
    fs.writeFileSync(accumulatedFile, JSON.stringify({ ...spec, train: { ...spec.train, microBatch: 5 } }));
    const whole = loadPipelineFile(fixture.file);
    const accumulated = loadPipelineFile(accumulatedFile);

    const wholeDir = path.join(tempFolder('vitpeft-whole-'), 'toy');
    const reference = path.join(tempFolder('vitpeft-accumulated-'), 'toy');
    await run(whole, wholeDir);
    const events = await run(accumulated, reference);
    const plans = events.flatMap((e) => (e.kind === 'method-start' ? [e.memoryPlan] : []));
    expect(plans).to.have.length(3);
    for (const plan of plans) expect(plan).to.match(/^memory plan: batches of 16 as 4 micro-batches of 5 \(train.microBatch 5\)/);
    const wholeLosses = readCsv(path.join(wholeDir, 'metrics.csv')).map((row) => Number(row.loss));
    const accumulatedLosses = readCsv(path.join(reference, 'metrics.csv')).map((row) => Number(row.loss));
    expect(accumulatedLosses).to.have.length(wholeLosses.length);
    accumulatedLosses.forEach((loss, i) => expect(Math.abs(loss - wholeLosses[i]) / wholeLosses[i], `loss in row ${i + 1}`).to.be.below(1e-4));

    const outDir = path.join(tempFolder('vitpeft-stop-'), 'toy');
    await run(accumulated, outDir, { stopAt: { method: 'full', step: 3 } });
    await run(accumulated, outDir, { resume: true, stopAt: { method: 'lora-r2', step: 5 } });
    await run(accumulated, outDir, { resume: true });
    expectSameRun(outDir, reference);
  });
});
