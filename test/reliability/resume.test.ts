// Stop and resume in process: a run stopped after a chosen step (at an evaluation and
// checkpoint boundary, between checkpoints, across an epoch boundary, twice, at a method's last
// step) and then resumed ends with the files of an uninterrupted run; a resume against changed
// settings or a damaged checkpoint is refused with a message naming the file; a diverging
// method is marked and the next one still runs.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { lastValueFrom, tap, toArray } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { SafetensorsError } from '../../models/checkpoint/safetensors';
import { pipeline } from '../../pipelines/composer';
import { PipelineEvent, RunEndEvent } from '../../common/events';
import { ResumeError, readRunRecord, writeRunRecord } from '../../pipelines/resume';
import { LoadedPipeline, decodePipeline, loadPipelineFile } from '../../pipelines/spec';
import { readCsv } from '../../stages/reporter/csvLog';
import { TrainingStateFile } from '../../stages/trainer/trainingState';
import { tempFolder } from '../helpers/datasetFixtures';
import { PipelineFixture, pipelineFixture } from '../helpers/pipelineFixtures';
import { INTERRUPTIBLE, expectSameRun } from './helpers';

interface StopAt {
  readonly method: string;
  readonly step: number;
}

async function run(loaded: LoadedPipeline, outDir: string, options: { resume?: boolean; stopAt?: StopAt } = {}): Promise<PipelineEvent[]> {
  const composed = pipeline();
  composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, out: () => undefined, err: () => undefined } });
  const stop = { requested: false };
  const { stopAt } = options;
  return lastValueFrom(
    composed.run(loaded, { outDir, resume: options.resume, stop }).pipe(
      // The step event reaches here before the step's follow-up runs, as a signal between steps would.
      tap((event) => {
        if (stopAt && event.kind === 'step' && event.method === stopAt.method && event.step === stopAt.step) stop.requested = true;
      }),
      toArray(),
    ),
  );
}

const runEnd = (events: PipelineEvent[]) => events[events.length - 1] as RunEndEvent;

describe('stop and resume (in process)', function () {
  this.timeout(120_000);
  let fixture: PipelineFixture;
  let loaded: LoadedPipeline;
  let reference: string;

  before(async () => {
    fixture = await pipelineFixture(INTERRUPTIBLE);
    loaded = loadPipelineFile(fixture.file);
    reference = path.join(tempFolder('vitpeft-reference-'), 'toy');
    const events = await run(loaded, reference);
    expect(runEnd(events).interrupted).to.equal(false);
  });

  it('stopped at an evaluation and checkpoint boundary: a checkpoint with that evaluation, an interrupted row, and the same files after resuming', async () => {
    const outDir = path.join(tempFolder('vitpeft-stop-'), 'toy');
    const tensors = tf.memory().numTensors;
    const events = await run(loaded, outDir, { stopAt: { method: 'full', step: 4 } });
    expect(tf.memory().numTensors, 'tensors left by a stopped run').to.equal(tensors);
    expect(runEnd(events).interrupted).to.equal(true);
    expect(events.filter((e) => e.kind === 'checkpoint').map((e) => (e.kind === 'checkpoint' ? e.step : 0))).to.deep.equal([2, 4]);
    const results = readCsv(path.join(outDir, 'results.csv'));
    expect(results.map((r) => [r.method, r.status, r.steps])).to.deep.equal([
      ['pretrained', 'ok', '0'],
      ['full', 'interrupted', '4'],
    ]);
    expect(results[1].note).to.match(/interrupted after step 4 of 8; continue with: vitpeft run --resume /);
    expect(readCsv(path.join(outDir, 'metrics.csv'))).to.have.length(4);
    const state = TrainingStateFile.open(path.join(outDir, 'checkpoints', 'full-seed0.safetensors'));
    try {
      expect(state.header.step).to.equal(4);
      expect((state.header.extra as { last?: { newTaskAccuracy?: number } }).last?.newTaskAccuracy).to.be.a('number');
    } finally {
      state.close();
    }
    // What a kill can leave besides: a half-written checkpoint's temporary file, and (on a full disk) a torn last row.
    const stale = path.join(outDir, 'checkpoints', `.full-seed0.safetensors.${process.pid}.1.tmp`);
    fs.writeFileSync(stale, 'partial');
    fs.appendFileSync(path.join(outDir, 'metrics.csv'), 'toy,full,0,5,1,0.12');
    const resumed = await run(loaded, outDir, { resume: true });
    expect(fs.existsSync(stale)).to.equal(false);
    expect(tf.memory().numTensors, 'tensors left by a resumed run').to.equal(tensors);
    expect(resumed.find((e) => e.kind === 'method-start')).to.include({ method: 'full', fromStep: 4 });
    expectSameRun(outDir, reference);
  });

  it('stopped between checkpoints on the AdamW method, then twice on the last method across an epoch boundary: the same files', async () => {
    const outDir = path.join(tempFolder('vitpeft-stop-'), 'toy');
    await run(loaded, outDir, { stopAt: { method: 'lora-r2', step: 3 } });
    expect(readCsv(path.join(outDir, 'results.csv')).map((r) => `${r.method}:${r.status}`)).to.deep.equal(['pretrained:ok', 'full:ok', 'lora-r2:interrupted']);
    await run(loaded, outDir, { resume: true, stopAt: { method: 'linear', step: 5 } });
    const events = await run(loaded, outDir, { resume: true, stopAt: { method: 'linear', step: 7 } });
    expect(events.filter((e) => e.kind === 'method-end' && e.restored).map((e) => (e.kind === 'method-end' ? e.result.method : ''))).to.deep.equal(['full', 'lora-r2']);
    await run(loaded, outDir, { resume: true });
    expectSameRun(outDir, reference);
  });

  it("stopped at a method's last step: that method finishes, the next does not start, the resume runs it", async () => {
    const outDir = path.join(tempFolder('vitpeft-stop-'), 'toy');
    const events = await run(loaded, outDir, { stopAt: { method: 'full', step: 8 } });
    expect(runEnd(events).interrupted).to.equal(true);
    expect(readCsv(path.join(outDir, 'results.csv')).map((r) => `${r.method}:${r.status}`)).to.deep.equal(['pretrained:ok', 'full:ok']);
    await run(loaded, outDir, { resume: true });
    expectSameRun(outDir, reference);
  });

  it('refuses a checkpoint made with other settings, and a damaged one, naming the file', async () => {
    const outDir = path.join(tempFolder('vitpeft-stop-'), 'toy');
    await run(loaded, outDir, { stopAt: { method: 'full', step: 3 } });
    const checkpoint = path.join(outDir, 'checkpoints', 'full-seed0.safetensors');
    const changed: LoadedPipeline = { ...loaded, spec: { ...loaded.spec, train: { ...loaded.spec.train, lr: 0.02 } } };
    let error: unknown;
    await run(changed, outDir, { resume: true }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(ResumeError);
    expect((error as Error).message).to.include(checkpoint).and.to.match(/other settings of full.*delete this file/);

    const bytes = fs.readFileSync(checkpoint);
    fs.writeFileSync(checkpoint, bytes.subarray(0, bytes.length - 100));
    error = undefined;
    await run(loaded, outDir, { resume: true }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(SafetensorsError);
    expect((error as Error).message).to.include(checkpoint);
    // Nothing was trimmed or rewritten by the refused resumes.
    expect(readCsv(path.join(outDir, 'metrics.csv'))).to.have.length(3);
  });
});

describe('a diverging method', function () {
  this.timeout(60_000);
  it('is marked diverged with the step and learning rate, leaves no tensors, and the next method still runs', async () => {
    const fixture = await pipelineFixture({
      ...INTERRUPTIBLE,
      methods: [{ method: 'full', name: 'diverging', train: { lr: 1e20, warmupSteps: 0, schedule: 'constant' } }, { method: 'linear' }],
    });
    const outDir = path.join(fixture.folder, 'out');
    const tensors = tf.memory().numTensors;
    const events = await run(loadPipelineFile(fixture.file), outDir);
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(runEnd(events).interrupted).to.equal(false);
    const results = readCsv(path.join(outDir, 'results.csv'));
    const diverged = results.find((r) => r.method === 'diverging')!;
    expect(diverged.status).to.equal('diverged');
    expect(diverged.note).to.match(/^loss became (NaN|-?Infinity) at step \d+ \(learning rate 1\.000e\+20\); this method diverged — lower its learning rate$/);
    expect(Number(diverged.steps)).to.equal(Number(/at step (\d+)/.exec(diverged.note)![1]));
    expect(results.find((r) => r.method === 'linear')!.status).to.equal('ok');
    expect(fs.readdirSync(path.join(outDir, 'checkpoints'))).to.deep.equal([]);
  });
});

describe('the run record (run.json)', () => {
  it('gives back the decoded pipeline and options, a learning-rate sweep expanded once', () => {
    const outDir = tempFolder('vitpeft-record-');
    const spec = decodePipeline(
      {
        name: 'sweep',
        model: { checkpoint: 'model.safetensors' },
        data: { train: 'mnist:train', test: 'mnist:test' },
        preprocess: { size: 28 },
        train: { steps: 4, batchSize: 2, lr: 0.1 },
        methods: [{ method: 'linear' }, { method: 'lora', rank: 2 }],
        sweep: { lr: [0.1, 0.01] },
      },
      'sweep.json',
    );
    const loaded = { spec, file: path.join(outDir, 'sweep.json'), baseDir: outDir };
    writeRunRecord(outDir, loaded, { outDir, seeds: 2, only: ['linear@lr0.1'] });
    const record = readRunRecord(outDir);
    expect(record.loaded.spec.methods.map((m) => m.name)).to.deep.equal(['linear@lr0.1', 'linear@lr0.01', 'lora-r2@lr0.1', 'lora-r2@lr0.01']);
    expect(record.loaded.spec.methods).to.deep.equal(spec.methods);
    expect(record.options).to.deep.equal({ seeds: 2, only: ['linear@lr0.1'] });
    expect(record.loaded.baseDir).to.equal(outDir);
  });
});
