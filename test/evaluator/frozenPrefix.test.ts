// Evaluations that keep the frozen blocks' activations give the numbers of the full forward pass,
// bit for bit, for every method with a frozen prefix — before and after the trainable part
// changes, with adapters or added blocks unplugged, and when the budget keeps nothing — and
// leave no tensor behind once the job disposes its cache.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as path from 'path';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { openSafetensorsImages } from '../../stages/dataset/safetensorsSource';
import { DefaultDatasetStage } from '../../stages/dataset/stage';
import { resolveTransform } from '../../stages/dataset/transforms';
import { FrozenPrefixCache } from '../../stages/evaluator/frozenPrefixCache';
import { DualEvaluator, EvaluationData, EvaluationResult } from '../../stages/evaluator/stage';
import { applySurgery } from '../../stages/surgery/applySurgery';
import { MethodSpec } from '../../stages/surgery/methodSpec';
import { tempFolder } from '../helpers/datasetFixtures';
import { toyDataset } from '../helpers/pipelineFixtures';

const METHODS: Array<{ spec: MethodSpec; from: number; keepsFeatures: boolean }> = [
  { spec: { method: 'linear' }, from: 3, keepsFeatures: true },
  { spec: { method: 'topk', k: 1 }, from: 2, keepsFeatures: false },
  { spec: { method: 'block', p: 1 }, from: 3, keepsFeatures: false },
];

describe('evaluation with the frozen prefix kept', function () {
  this.timeout(60_000);
  let base: VisionTransformer;
  let data: EvaluationData;
  const evaluator = new DualEvaluator(new DefaultDatasetStage());

  before(() => {
    const folder = tempFolder('vitpeft-frozen-prefix-');
    for (const [name, count, kind, seed] of [['test', 30, 'colour', 2], ['bank', 40, 'brightness', 3], ['query', 21, 'brightness', 4]] as const) {
      toyDataset(path.join(folder, `${name}.safetensors`), count, kind, seed);
    }
    const open = (name: string) => openSafetensorsImages(path.join(folder, `${name}.safetensors`));
    const transform = resolveTransform({ ...resolveTransform('native'), mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    base = VisionTransformer.init({ imageSize: 16, patchSize: 4, inChannels: 3, width: 32, depth: 3, heads: 2, mlpHidden: 64, numClasses: 0, layerNormEps: 1e-6 }, { seed: 5 });
    // Batches of 8 over 30, 40 and 21 images: a smaller last batch in every set.
    data = { test: { source: open('test'), transform }, retention: { bank: open('bank'), query: open('query'), transform }, knn: { k: [1, 5, 10], temperature: 0.07 }, batchSize: 8 };
  });

  after(() => base.dispose());

  /** Moves every trainable variable, as training would. */
  function perturb(trainable: readonly tf.Variable[], seed: number): void {
    for (const variable of trainable) tf.tidy(() => variable.assign(tf.add(variable, tf.randomNormal(variable.shape, 0, 0.2, 'float32', seed))));
  }

  const same = (a: EvaluationResult, b: EvaluationResult) => expect({ ...a, seconds: 0 }).to.deep.equal({ ...b, seconds: 0 });

  for (const { spec, from, keepsFeatures } of METHODS) {
    it(`${spec.method}: the same numbers, bit for bit, on the first and later evaluations, after training moved the trainable part`, async () => {
      const tensorsBefore = tf.memory().numTensors;
      const surgery = applySurgery(base, spec, { classes: 2, seed: 1 });
      const cache = new FrozenPrefixCache(surgery.model, surgery.firstTrainableBlock, 2 ** 26);
      expect([cache.from, cache.keepsFeatures, cache.useful]).to.deep.equal([from, keepsFeatures, true]);
      const unplugged = spec.method === 'block';
      const request = { newTask: true, retention: true, unplugged, frozenHead: null };
      const bankFeatures = async (withCache: boolean): Promise<Float32Array> => {
        const set = await evaluator.features(surgery.model, { source: data.retention!.bank, transform: data.retention!.transform }, 8, {}, null, { cache: withCache ? cache : undefined });
        const blocks = Array.from({ length: set.features.blockCount }, (_, i) => set.features.block(i));
        set.features.dispose();
        return Float32Array.from(blocks.flatMap((block) => Array.from(block)));
      };
      let previous: Float32Array | undefined;
      try {
        for (let round = 0; round < 3; round++) {
          const features = await bankFeatures(false);
          expect(Buffer.from((await bankFeatures(true)).buffer).equals(Buffer.from(features.buffer)), 'bank features with the cache, bit for bit').to.equal(true);
          // Training moved the trainable part: the features move too (the part the cache may not keep).
          if (previous && !keepsFeatures) expect(Buffer.from(previous.buffer).equals(Buffer.from(features.buffer))).to.equal(false);
          previous = features;
          const plain = await evaluator.evaluate(surgery.model, data, request);
          const cached = await evaluator.evaluate(surgery.model, data, { ...request, frozenPrefix: cache });
          same(cached, plain);
          expect(plain.newTaskAccuracy).to.be.a('number');
          if (unplugged) expect(plain.retentionUnplugged).to.be.an('object');
          perturb(surgery.trainable, 10 + round);
        }
        expect(cache.heldBytes, 'bytes kept: 91 images').to.equal(91 * 4 * (keepsFeatures ? 32 : 17 * 32));
      } finally {
        cache.dispose();
        surgery.model.dispose();
      }
      expect(tf.memory().numTensors, 'tensors after the job').to.equal(tensorsBefore);
    });
  }

  it('keeps nothing when the budget is too small, or when the embeddings train, and still gives the same numbers', async () => {
    const surgery = applySurgery(base, { method: 'block', p: 1 }, { classes: 2, seed: 1 });
    const tiny = new FrozenPrefixCache(surgery.model, surgery.firstTrainableBlock, 1000);
    const full = applySurgery(base, { method: 'full' }, { classes: 2, seed: 1 });
    const none = new FrozenPrefixCache(full.model, full.firstTrainableBlock, 2 ** 26);
    try {
      const request = { newTask: true, retention: true, unplugged: false };
      for (let round = 0; round < 2; round++) {
        same(await evaluator.evaluate(surgery.model, data, { ...request, frozenPrefix: tiny }), await evaluator.evaluate(surgery.model, data, request));
        same(await evaluator.evaluate(full.model, data, { ...request, frozenPrefix: none }), await evaluator.evaluate(full.model, data, request));
      }
      expect(tiny.heldBytes).to.equal(0);
      expect([none.useful, none.heldBytes]).to.deep.equal([false, 0]);
    } finally {
      tiny.dispose();
      none.dispose();
      surgery.model.dispose();
      full.model.dispose();
    }
  });
});
