// Running out of memory ends as one line naming what was being done and what to change: a step's
// failure (simulated with the wasm backend's own abort message) names the method, the step and
// train.microBatch, and the last checkpoint stays for the resume; the pretrained model's evaluation
// names itself and evaluate.batchSize. (Tensors are not counted here:
// tfjs keeps what its tape saved for the backward pass of a forward that threw, and after a real
// abort the wasm module cannot be used again anyway; the process ends with the error.)

import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { Observable, lastValueFrom } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import { loadPipelineFile } from '../../pipelines/spec';
import { Batch } from '../../stages/dataset/batches';
import { OutOfMemoryError, TrainJob, isOutOfMemory } from '../../stages/trainer/session';
import { DefaultTrainerStage, TrainHooks, TrainedStep } from '../../stages/trainer/stage';
import { tempFolder } from '../helpers/datasetFixtures';
import { pipelineFixture } from '../helpers/pipelineFixtures';
import { INTERRUPTIBLE } from './helpers';

const WASM_ABORT = 'Aborted(). Build with -sASSERTIONS for more info.';
/** What the wasm backend throws when its heap is exhausted (a WebAssembly.RuntimeError). */
const wasmAbort = () => Object.assign(new Error(WASM_ABORT), { name: 'RuntimeError' });

/** The default trainer, whose model's blocks abort like an exhausted wasm heap from the given step on. */
class AbortingTrainer extends DefaultTrainerStage {
  constructor(private readonly fromStep: number) {
    super();
  }

  override train<T>(job: TrainJob, batches: Observable<Batch>, hooks: TrainHooks<T> = {}): Observable<TrainedStep | T> {
    let completed = 0;
    const model = job.model;
    const forwardBlocks = model.forwardBlocks.bind(model);
    model.forwardBlocks = (...args: Parameters<typeof forwardBlocks>) => {
      if (completed + 1 >= this.fromStep) throw wasmAbort();
      return forwardBlocks(...args);
    };
    return super.train(job, batches, {
      ...hooks,
      afterStep: (step, session) => {
        completed = step.step;
        return hooks.afterStep!(step, session);
      },
    });
  }
}

describe('out of memory', function () {
  this.timeout(60_000);

  it('recognises the backends\' out-of-memory errors and nothing else', () => {
    expect(isOutOfMemory(wasmAbort())).to.equal(true);
    expect(isOutOfMemory(new RangeError('Array buffer allocation failed'))).to.equal(true);
    expect(isOutOfMemory(new Error('Cannot enlarge memory arrays to size 4294967296 bytes'))).to.equal(true);
    expect(isOutOfMemory(new Error('k-NN: label 7 is outside [0, 5)'))).to.equal(false);
    expect(isOutOfMemory(new Error('no room left in the batch'))).to.equal(false);
    expect(new OutOfMemoryError(3, 128, 16, 'Aborted()').message).to.equal(
      'out of memory in training step 3 (batch 128 as micro-batches of 16): set train.microBatch to 8 or lower, or use a smaller model or image size (Aborted())',
    );
  });

  it('a step that aborts: one line naming the method, the step and train.microBatch; the last checkpoint kept', async () => {
    const fixture = await pipelineFixture(INTERRUPTIBLE);
    const outDir = path.join(tempFolder('vitpeft-oom-'), 'toy');
    const composed = pipeline({ trainer: new AbortingTrainer(3) });
    composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, out: () => undefined, err: () => undefined } });
    let error: Error | undefined;
    await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir }), { defaultValue: undefined }).catch((e: Error) => (error = e));
    const checkpoint = path.join(outDir, 'checkpoints', 'full-seed0.safetensors');
    expect(error?.message).to.equal(
      `full seed 0: out of memory in training step 3 (batch 16): set train.microBatch to 8 or lower, or use a smaller model or image size (${WASM_ABORT}); ` +
        `its last checkpoint is kept (${checkpoint}): after the change, vitpeft run --resume ${outDir} continues from it`,
    );
    expect(error?.message).not.to.contain('\n');
    expect(fs.existsSync(checkpoint)).to.equal(true);
  });

  it("the pretrained model's evaluation that aborts: one line naming it and evaluate.batchSize", async () => {
    const fixture = await pipelineFixture(INTERRUPTIBLE);
    const outDir = path.join(tempFolder('vitpeft-oom-'), 'toy');
    const aborting = { evaluate: () => Promise.reject(wasmAbort()) };
    const composed = pipeline({ evaluator: aborting });
    composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, out: () => undefined, err: () => undefined } });
    let error: Error | undefined;
    await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir }), { defaultValue: undefined }).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/^the pretrained model's evaluation: out of memory \(evaluation batch \d+\): set evaluate\.batchSize lower \(Aborted\(\)\. Build with -sASSERTIONS for more info\.\)$/);
  });

  it('an evaluation error that is not out of memory passes through unchanged', async () => {
    const fixture = await pipelineFixture(INTERRUPTIBLE);
    const outDir = path.join(tempFolder('vitpeft-oom-'), 'toy');
    const failing = { evaluate: () => Promise.reject(new Error('k-NN: label 7 is outside [0, 5)')) };
    const composed = pipeline({ evaluator: failing });
    composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, out: () => undefined, err: () => undefined } });
    let error: Error | undefined;
    await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir }), { defaultValue: undefined }).catch((e: Error) => (error = e));
    expect(error?.message).to.equal('k-NN: label 7 is outside [0, 5)');
  });
});
