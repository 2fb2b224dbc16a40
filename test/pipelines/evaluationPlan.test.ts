// The evaluation's memory plan: evaluate.batchSize "auto" takes the largest batch that fits beside
// what is resident (the weights, the kernels' packed copies of them, the optimizer state, the
// frozen-prefix cache), an explicit one that cannot fit is refused in one line naming
// evaluate.batchSize and the largest that fits; the batch does not enter a checkpoint's
// fingerprint; a run prints the plans and evaluates at the planned batches.

import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import * as path from 'path';
import { lastValueFrom, toArray } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { DEFAULT_PIPELINE } from '../../pipelines/builtin';
import { pipeline } from '../../pipelines/composer';
import { planJobs } from '../../pipelines/job';
import { MemoryPlanError, jobMemoryPlan, memoryLimit, modelShape, optimizerSlots, planEvaluationBatch } from '../../pipelines/memoryPlan';
import { resolveCheckpointPath } from '../../pipelines/prepare';
import { jobFingerprint } from '../../pipelines/resume';
import { PipelineSpecError, decodePipeline, loadPipelineFile } from '../../pipelines/spec';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { applySurgery } from '../../stages/surgery';
import type { EvaluationData, EvaluationRequest, EvaluationResult, EvaluatorStage } from '../../stages/evaluator/stage';
import { ModelShape, evalBatchBytes, kernelBytes } from '../../stages/trainer/memoryEstimate';
import { pipelineFixture } from '../helpers/pipelineFixtures';

const VIT_B16: ModelShape = { imageSize: 224, patchSize: 16, width: 768, mlpHidden: 3072, heads: 12, depth: 12 };
/** ViT-B/16's weights (86 M floats) and the kernels' copies of them: what a pretrained model's evaluation has resident. */
const VIT_B16_RESIDENT = 86_000_000 * 4 + kernelBytes(VIT_B16);

describe('pipelines: the evaluation memory plan', () => {
  it('"auto" takes the largest evaluation batch under the limit, up to its most', () => {
    const limit = memoryLimit('wasm');
    const plan = planEvaluationBatch(VIT_B16, { requested: 'auto', most: 128 }, VIT_B16_RESIDENT, limit, 'the test evaluation');
    expect(plan.batchSize).to.be.within(2, 127);
    expect(VIT_B16_RESIDENT + evalBatchBytes(VIT_B16, plan.batchSize)).to.be.at.most(limit.bytes);
    expect(VIT_B16_RESIDENT + evalBatchBytes(VIT_B16, plan.batchSize + 1)).to.be.above(limit.bytes);
    expect(plan.summary).to.match(new RegExp(`^evaluation batches of ${plan.batchSize} \\(evaluate.batchSize auto\\) estimated at [\\d.]+ GiB$`));
    const small = { ...VIT_B16, imageSize: 32, patchSize: 4, width: 64, mlpHidden: 128, heads: 2 };
    expect(planEvaluationBatch(small, { requested: 'auto', most: 48 }, 0, limit, 'a small model').batchSize).to.equal(48);
  });

  it('an explicit evaluate.batchSize that cannot fit is refused in one line naming it and the largest that fits', () => {
    const limit = memoryLimit('wasm');
    const largest = planEvaluationBatch(VIT_B16, { requested: 'auto', most: 256 }, VIT_B16_RESIDENT, limit, 'x').batchSize;
    expect(() => planEvaluationBatch(VIT_B16, { requested: 256, most: 256 }, VIT_B16_RESIDENT, limit, "full's evaluation")).to.throw(
      MemoryPlanError,
      new RegExp(`^evaluate.batchSize: 256 does not fit full's evaluation on this backend \\(estimated [\\d.]+ GiB, limit 2.40 GiB: wasm heap 4.00 GiB less 40% headroom\\); the largest that fits is ${largest} \\(or leave it out: "auto" takes the largest\\)$`),
    );
    expect(planEvaluationBatch(VIT_B16, { requested: largest, most: 256 }, VIT_B16_RESIDENT, limit, 'x').batchSize).to.equal(largest);
    const full = { bytes: VIT_B16_RESIDENT, description: 'a test limit' };
    expect(() => planEvaluationBatch(VIT_B16, { requested: 1, most: 256 }, VIT_B16_RESIDENT, full, 'x')).to.throw(MemoryPlanError, /^evaluate.batchSize: 1 does not fit .*not even 1 fits: use a smaller model or image size$/);
    expect(planEvaluationBatch(VIT_B16, { requested: 'auto', most: 256 }, VIT_B16_RESIDENT, full, 'x').summary).to.match(/evaluation batches of 1 .* more than the limit: it may run out of memory$/);
  });

  it('the evaluation batch changes memory, not the features: bit for bit at 10 against 3 + 3 + 3 + 1', () => {
    const model = VisionTransformer.init({ imageSize: 32, patchSize: 8, inChannels: 3, width: 48, depth: 2, heads: 3, mlpHidden: 96, numClasses: 0, layerNormEps: 1e-6 }, { seed: 4 });
    const images = tf.randomNormal([10, 32, 32, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    try {
      const whole = tf.tidy(() => model.embedCls(images, {}).dataSync());
      const pieces = tf.tidy(() => [0, 3, 6, 9].flatMap((start) => Array.from(model.embedCls(tf.slice(images, [start, 0, 0, 0], [Math.min(3, 10 - start), -1, -1, -1]), {}).dataSync())));
      expect(pieces).to.deep.equal(Array.from(whole));
    } finally {
      model.dispose();
      images.dispose();
    }
  });

  describe("a job's evaluation, on the built-in default's model", () => {
    let base: VisionTransformer;
    before(() => {
      const loaded = loadPipelineFile(DEFAULT_PIPELINE);
      base = loadVit(resolveCheckpointPath(loaded.spec.model.checkpoint, loaded.baseDir), { imageSize: loaded.spec.preprocess.size }).model;
    });
    after(() => base.dispose());

    it("every method of the default evaluates in its file's batches of 256, as before there was a plan", () => {
      const loaded = loadPipelineFile(DEFAULT_PIPELINE);
      expect(loaded.spec.evaluate?.batchSize).to.equal(256);
      for (const job of planJobs(loaded.spec, {})) {
        const surgery = applySurgery(base, job.entry, { classes: 5, seed: job.seed });
        try {
          const plan = jobMemoryPlan(job, surgery, memoryLimit('wasm'), { requested: 256, most: 256, cacheBytes: 256 * 2 ** 20 });
          expect(plan.evaluation?.batchSize, job.method).to.equal(256);
          expect(plan.summary).to.match(/^memory plan: whole batches of 32 \(train.microBatch auto\), step estimated at [\d.]+ MiB of 2.40 GiB .*; evaluation batches of 256 \(evaluate.batchSize 256\) estimated at [\d.]+ MiB$/);
        } finally {
          surgery.model.dispose();
        }
      }
    });

    it('counts the two models, the kernels\' copies of both, the optimizer state and the frozen-prefix cache', () => {
      // Two steps: the default's evaluations after steps 5 … 100 would be past its end.
      const defaultSpec = loadPipelineFile(DEFAULT_PIPELINE).spec;
      const job = planJobs(decodePipeline({ ...defaultSpec, train: { steps: 2, batchSize: 64, lr: 0.01, optimizer: 'adamw' }, evaluate: { ...defaultSpec.evaluate, at: [0, 1] }, methods: [{ method: 'full' }] }, 'p.json'), {})[0];
      const surgery = applySurgery(base, job.entry, { classes: 5, seed: 0 });
      try {
        const shape = modelShape(base.config);
        const cacheBytes = 2 ** 20;
        const resident = tf.memory().numBytes + surgery.trainableCount * 4 * optimizerSlots(job.settings) + 2 * kernelBytes(shape) + cacheBytes;
        const limit = { bytes: resident + evalBatchBytes(shape, 20), description: 'a test limit' };
        const request = { requested: 'auto' as const, most: 64, cacheBytes };
        expect(jobMemoryPlan(job, surgery, limit, request).evaluation?.batchSize).to.equal(20);
        expect(jobMemoryPlan(job, surgery, limit, { ...request, cacheBytes: 0 }).evaluation?.batchSize).to.be.above(20);
        expect(() => jobMemoryPlan(job, surgery, limit, { ...request, requested: 21 })).to.throw(MemoryPlanError, /^evaluate.batchSize: 21 does not fit full's evaluation .*the largest that fits is 20 /);
      } finally {
        surgery.model.dispose();
      }
    });
  });

  it('evaluate.batchSize takes a positive integer or "auto", and stays out of a checkpoint\'s fingerprint', () => {
    const raw = JSON.parse(JSON.stringify(loadPipelineFile(DEFAULT_PIPELINE).spec));
    raw.evaluate = { ...raw.evaluate, batchSize: 'auto' };
    const auto = decodePipeline(raw, 'p.json');
    const job = planJobs(auto, {})[0];
    raw.evaluate.batchSize = 7;
    const seven = decodePipeline(raw, 'p.json');
    expect(jobFingerprint(seven, job)).to.equal(jobFingerprint(auto, job));
    raw.evaluate.knn = { k: [3] };
    expect(jobFingerprint(decodePipeline(raw, 'p.json'), job)).to.not.equal(jobFingerprint(auto, job));
    for (const bad of [0, 2.5, 'big']) {
      raw.evaluate.batchSize = bad;
      expect(() => decodePipeline(raw, 'p.json')).to.throw(PipelineSpecError, /evaluate.batchSize.*expected a positive integer or "auto"/);
    }
  });

  describe('a run', () => {
    async function run(overrides: Record<string, unknown>, evaluator: EvaluatorStage) {
      const fixture = await pipelineFixture({ methods: [{ method: 'full' }, { method: 'lora', rank: 2 }], train: { steps: 2, batchSize: 8, lr: 0.01 }, ...overrides });
      const outDir = path.join(fixture.folder, 'out');
      const composed = pipeline({ evaluator });
      const log: string[] = [];
      composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, out: (text: string) => log.push(text), err: (text: string) => log.push(text) } });
      const events = await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir, saveModels: false }).pipe(toArray()));
      return { events, log: log.join('') };
    }

    it('prints the plans and evaluates the baseline and every job at the planned batch', async () => {
      const batches: number[] = [];
      const spy: EvaluatorStage = {
        async evaluate(_model: VisionTransformer, data: EvaluationData, request: EvaluationRequest): Promise<EvaluationResult> {
          batches.push(data.batchSize);
          return { newTaskAccuracy: request.newTask ? 50 : undefined, retention: { 5: 60, 10: 60 }, seconds: 0 };
        },
      };
      const { events, log } = await run({ evaluate: { every: 0, knn: { k: [5, 10] } } }, spy);
      expect(batches).to.deep.equal([32, 32, 32]);
      expect(log).to.match(/vitpeft: memory plan: the pretrained model's evaluation batches of 32 \(evaluate.batchSize auto\) estimated at [\d.]+ MiB of /);
      const plans = events.flatMap((event) => (event.kind === 'method-start' ? [event.memoryPlan] : []));
      expect(plans).to.have.length(2);
      for (const plan of plans) expect(plan).to.match(/; evaluation batches of 32 \(evaluate.batchSize auto\) estimated at [\d.]+ MiB$/);
    });

    it('refuses an explicit evaluate.batchSize that cannot fit before anything is evaluated', async () => {
      let calls = 0;
      const counter: EvaluatorStage = {
        async evaluate(): Promise<EvaluationResult> {
          calls++;
          return { seconds: 0 };
        },
      };
      const error = await run({ evaluate: { every: 0, batchSize: 100_000_000, knn: { k: [5, 10] } } }, counter).then(
        () => undefined,
        (caught: Error) => caught,
      );
      expect(error).to.be.instanceOf(MemoryPlanError);
      expect(error?.message).to.match(/^evaluate.batchSize: 100000000 does not fit the pretrained model's evaluation on this backend \(estimated [\d.]+ [GT]iB, .*\); the largest that fits is \d+ /);
      expect(calls).to.equal(0);
    });
  });
});
