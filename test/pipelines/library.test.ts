// What the library adds for code that uses vitpeft: pipelines built as objects, the default
// evaluator built without DI, and a stage wrapped around its default through the container with
// its extra metrics reaching the event stream.

import { expect } from 'chai';
import * as path from 'path';
import { lastValueFrom, toArray } from 'rxjs';
import { EvalEvent, PipelineEvent } from '../../common/events';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import { PipelineSpec, PipelineSpecError, loadPipelineFile, pipelineFromObject } from '../../pipelines/spec';
import { DualEvaluator, EvaluatorStage } from '../../stages/evaluator/stage';
import { ReporterOptions } from '../../stages/reporter/stage';
import { pipelineFixture } from '../helpers/pipelineFixtures';

describe('pipelineFromObject', () => {
  it('decodes a typed object with the file codec; relative paths resolve against baseDir', async () => {
    const fixture = await pipelineFixture();
    const fromFile = loadPipelineFile(fixture.file);
    const loaded = pipelineFromObject(fixture.spec as PipelineSpec, { baseDir: path.relative(process.cwd(), fixture.folder) });
    expect(loaded.spec).to.deep.equal(fromFile.spec);
    expect(loaded.baseDir).to.equal(fixture.folder);
    expect(loaded.file).to.equal("pipeline 'toy' (in code)");
  });

  it('refuses what the type cannot rule out, naming the label and every field', async () => {
    const spec = (await pipelineFixture()).spec as PipelineSpec;
    const bad = { ...spec, train: { ...spec.train, batchSize: 0, lr: -1 } };
    expect(() => pipelineFromObject(bad, { baseDir: '.', label: 'my pipeline' }))
      .to.throw(PipelineSpecError)
      .with.property('message')
      .that.matches(/^my pipeline: 2 problems/)
      .and.includes('train.batchSize: expected a positive integer, got 0')
      .and.includes('train.lr: expected a positive number, got -1');
  });
});

describe('a default stage wrapped through the container', () => {
  it('keeps the default evaluation and adds its own metrics to the eval events', async () => {
    const fixture = await pipelineFixture({ methods: [{ method: 'linear' }], train: { steps: 4, batchSize: 8, lr: 0.01 }, evaluate: { every: 2, knn: { k: [5] } } });
    const composed = pipeline();
    composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir: path.join(fixture.folder, 'out'), interactive: false, plots: false, out: () => undefined, err: () => undefined } });
    const inner = composed.container.resolve<EvaluatorStage>(TOKENS.evaluator);
    expect(inner).to.be.instanceOf(DualEvaluator);
    let calls = 0;
    const wrapper: EvaluatorStage = {
      async evaluate(model, data, request) {
        calls++;
        const result = await inner.evaluate(model, data, request);
        return { ...result, metrics: { call: calls } };
      },
    };
    composed.container.register<EvaluatorStage>(TOKENS.evaluator, { useValue: wrapper });
    const events: PipelineEvent[] = await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir: path.join(fixture.folder, 'out'), saveModels: false }).pipe(toArray()));
    const evals = events.filter((event): event is EvalEvent => event.kind === 'eval');
    expect(evals.map((event) => [event.method, event.step, event.metrics?.call])).to.deep.equal([
      ['pretrained', 0, 1],
      ['linear', 2, 2],
      ['linear', 4, 3],
    ]);
    expect(evals.every((event) => event.retention?.[5] !== undefined)).to.equal(true);
    expect(evals.slice(1).every((event) => typeof event.newTaskAccuracy === 'number')).to.equal(true);
  });

  it('new DualEvaluator() reads with the default dataset stage, outside any container', async () => {
    const fixture = await pipelineFixture({ methods: [{ method: 'linear' }], train: { steps: 2, batchSize: 8, lr: 0.01 }, evaluate: { every: 0, knn: { k: [5] } } });
    const composed = pipeline({ evaluator: new DualEvaluator() });
    composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir: path.join(fixture.folder, 'out'), interactive: false, plots: false, out: () => undefined, err: () => undefined } });
    const end = await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir: path.join(fixture.folder, 'out'), saveModels: false }));
    expect(end.kind).to.equal('run-end');
    const result = end.kind === 'run-end' ? end.results[0] : undefined;
    expect(result?.status).to.equal('ok');
    expect(result?.retentionAccuracy).to.be.a('number');
  });
});
