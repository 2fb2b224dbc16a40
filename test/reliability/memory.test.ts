// A long training loop does not leak: 1,000 steps of full fine-tuning (everything on the
// gradient tape) through the real trainer stage on the real batch stream, with a training-state
// checkpoint every 100 steps and one restored half way, keep the tfjs tensor count exactly flat
// and grow resident memory by less than 50 MB. Garbage is collected every 50 steps and before
// each measurement, so what is measured is memory kept, not how far V8 lets its heap grow with
// garbage before collecting (which moves the resident high-water mark by tens of MB, run to run).

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as path from 'path';
import * as v8 from 'v8';
import * as vm from 'vm';
import { EMPTY, defer, lastValueFrom } from 'rxjs';
import { batches } from '../../stages/dataset/batches';
import { MemorySource } from '../../stages/dataset/memorySource';
import { applySurgery } from '../../stages/surgery';
import { DefaultTrainerStage } from '../../stages/trainer/stage';
import { TrainingStateFile, saveTrainingState } from '../../stages/trainer/trainingState';
import { tempFolder } from '../helpers/datasetFixtures';
import { tinyModel } from '../surgery/fixtures';

/** V8's gc(), exposed at run time (mocha does not start node with --expose-gc). */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

function residentAfterGc(): number {
  collectGarbage();
  return process.memoryUsage().rss;
}

describe('1,000 training steps', function () {
  this.timeout(120_000);

  it('keep the tensor count flat and resident memory growth under 50 MB (checkpoints included)', async () => {
    const count = 64;
    const pixels = Uint8Array.from({ length: count * 16 * 16 * 3 }, (_, i) => (i * 2654435761) >>> 24);
    const source = new MemorySource({ description: 'noise', pixels, shape: [count, 16, 16, 3], labels: Array.from({ length: count }, (_, i) => i % 2) });
    const base = tinyModel(1);
    const surgery = applySurgery(base, { method: 'full' }, { classes: 2, seed: 0 });
    base.dispose();
    const checkpoint = path.join(tempFolder('vitpeft-memory-'), 'state.safetensors');
    const steps = 1000;
    const tensorCounts: number[] = [];
    let rssAfterWarmup = 0;
    let rssAtEnd = 0;
    try {
      const before = tf.memory().numTensors;
      const job = {
        model: surgery.model,
        trainable: surgery.trainable,
        firstTrainableBlock: surgery.firstTrainableBlock,
        numClasses: 2,
        settings: { optimizer: 'sgd' as const, momentum: 0.9, lr: 0.01, warmupSteps: 10, steps, schedule: 'cosine' as const, batchSize: 8, seed: 0 },
      };
      await lastValueFrom(
        new DefaultTrainerStage().train(job, batches(source, { batchSize: 8, epochs: Infinity, seed: 0, transform: 'native' }), {
          afterStep: (trained, session) =>
            defer(() => {
              if (trained.step % 100 === 0) saveTrainingState(checkpoint, session, surgery.trainableNames, { step: trained.step });
              if (trained.step === 500) {
                // Restoring allocates and frees its own tensors; the count must come back.
                const state = TrainingStateFile.open(checkpoint);
                state.restoreInto(session, surgery.trainableNames);
                state.close();
              }
              if (trained.step % 50 === 0) collectGarbage();
              if (trained.step === 100) rssAfterWarmup = residentAfterGc();
              if (process.env.VITPEFT_MEMORY_LOG && trained.step % 100 === 0) {
                const usage = process.memoryUsage();
                const heap = (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.length ?? 0;
                // eslint-disable-next-line no-console
                console.log(trained.step, (usage.rss / 2 ** 20).toFixed(1), (usage.heapUsed / 2 ** 20).toFixed(1), (usage.external / 2 ** 20).toFixed(1), (heap / 2 ** 20).toFixed(1));
              }
              if (trained.step >= 10) tensorCounts.push(tf.memory().numTensors);
              if (trained.step === steps) rssAtEnd = residentAfterGc();
              return EMPTY;
            }),
        }),
        { defaultValue: undefined },
      );
      expect(tf.memory().numTensors, 'tensors after the loop').to.equal(before);
    } finally {
      surgery.model.dispose();
    }
    expect(tensorCounts).to.have.length(steps - 9);
    expect(Math.max(...tensorCounts), 'tensor count during the loop').to.equal(Math.min(...tensorCounts));
    const growth = (rssAtEnd - rssAfterWarmup) / 2 ** 20;
    // eslint-disable-next-line no-console
    console.log(`      RSS growth over steps 100..1000: ${growth.toFixed(1)} MB; tensors during the loop: ${tensorCounts[0]}`);
    expect(growth, 'resident memory growth (MB) from step 100 to step 1000').to.be.below(50);
  });
});
