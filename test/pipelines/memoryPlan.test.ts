// The memory plan: the built-in default keeps whole batches (so "auto" leaves its results as they
// were), a tight limit makes "auto" accumulate, an explicit micro-batch that cannot fit is refused
// with one line naming train.microBatch and the largest that fits, and the spec's field is checked.

import { expect } from 'chai';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { DEFAULT_PIPELINE } from '../../pipelines/builtin';
import { planJobs } from '../../pipelines/job';
import { MemoryPlanError, WASM_HEAP_BYTES, jobMemoryPlan, memoryLimit, planMicroBatch } from '../../pipelines/memoryPlan';
import { PipelineSpecError, decodePipeline, loadPipelineFile } from '../../pipelines/spec';
import { resolveCheckpointPath } from '../../pipelines/prepare';
import { applySurgery } from '../../stages/surgery';
import { StepShape, trainStepBytes } from '../../stages/trainer/memoryEstimate';

/** ViT-B/16 at 224 px with LoRA r8 in every block (SGD momentum): the base's weights resident, every block in the tape. */
const VIT_B_LORA: StepShape = {
  model: { imageSize: 224, patchSize: 16, width: 768, mlpHidden: 3072, heads: 12, depth: 12 },
  tapeBlocks: 12,
  trainableParams: 300_000,
  optimizerSlots: 1,
  residentBytes: 86_000_000 * 4,
};

describe('pipelines: the memory plan', () => {
  it('the built-in default: every method steps whole batches of 32 on the wasm backend', () => {
    const loaded = loadPipelineFile(DEFAULT_PIPELINE);
    const { model: base } = loadVit(resolveCheckpointPath(loaded.spec.model.checkpoint, loaded.baseDir), { imageSize: loaded.spec.preprocess.size });
    try {
      for (const job of planJobs(loaded.spec, {})) {
        expect(job.microBatch, job.method).to.equal('auto');
        const surgery = applySurgery(base, job.entry, { classes: 5, seed: job.seed });
        try {
          const plan = jobMemoryPlan(job, surgery, memoryLimit('wasm'));
          expect(plan.microBatch, job.method).to.equal(32);
          expect(plan.summary).to.match(/^memory plan: whole batches of 32 \(train.microBatch auto\), step estimated at [\d.]+ MiB of 2.40 GiB/);
        } finally {
          surgery.model.dispose();
        }
      }
    } finally {
      base.dispose();
    }
  });

  it('"auto" on ViT-B/16 with LoRA at batch 128 on wasm takes the largest micro-batch under the limit', () => {
    const limit = memoryLimit('wasm');
    expect(limit.bytes).to.equal(0.6 * WASM_HEAP_BYTES);
    const plan = planMicroBatch(VIT_B_LORA, 128, 'auto', limit, 'lora-r8');
    expect(plan.microBatch).to.be.within(1, 127);
    expect(trainStepBytes(VIT_B_LORA, 128, plan.microBatch)).to.be.at.most(limit.bytes);
    expect(trainStepBytes(VIT_B_LORA, 128, plan.microBatch + 1)).to.be.above(limit.bytes);
    expect(plan.summary).to.contain(`as ${Math.ceil(128 / plan.microBatch)} micro-batches of ${plan.microBatch}`);
  });

  it('an explicit micro-batch that cannot fit is refused in one line naming train.microBatch and the largest that fits', () => {
    const limit = memoryLimit('wasm');
    const largest = planMicroBatch(VIT_B_LORA, 128, 'auto', limit, 'lora-r8').microBatch;
    expect(() => planMicroBatch(VIT_B_LORA, 128, 64, limit, 'lora-r8')).to.throw(MemoryPlanError, new RegExp(`^train.microBatch: 64 does not fit lora-r8's step on this backend \\(estimated [\\d.]+ GiB, limit 2.40 GiB: wasm heap 4.00 GiB less 40% headroom\\); the largest that fits is ${largest}$`));
    expect(planMicroBatch(VIT_B_LORA, 128, largest, limit, 'lora-r8').microBatch).to.equal(largest);
    const tiny = { bytes: VIT_B_LORA.residentBytes, description: 'a test limit' };
    expect(() => planMicroBatch(VIT_B_LORA, 128, 1, tiny, 'lora-r8')).to.throw(MemoryPlanError, /train.microBatch: 1 does not fit .*not even 1 fits: use a smaller model, image size or method$/);
  });

  it('train.microBatch takes a positive integer or "auto", in the file and per method', () => {
    const loaded = loadPipelineFile(DEFAULT_PIPELINE);
    const raw = JSON.parse(JSON.stringify(loaded.spec));
    raw.train.microBatch = 8;
    raw.methods[0].train = { ...raw.methods[0].train, microBatch: 'auto' };
    const jobs = planJobs(decodePipeline(raw, 'p.json'), {});
    expect(jobs.map((job) => job.microBatch)).to.deep.equal(['auto', 8, 8, 8, 8, 8, 8, 8, 8]);
    expect(jobs[1].settings).not.to.have.property('microBatch');
    for (const bad of [0, 2.5, 'big']) {
      raw.train.microBatch = bad;
      expect(() => decodePipeline(raw, 'p.json')).to.throw(PipelineSpecError, /train.microBatch.*expected a positive integer or "auto"/);
    }
  });
});
