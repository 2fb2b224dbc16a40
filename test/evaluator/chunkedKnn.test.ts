// k-NN over a bank kept outside the compute heap, in blocks (in memory or spilled to a file):
// the same neighbours, similarities and accuracies as one similarity matrix over the whole bank.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import { FeatureStore } from '../../stages/evaluator/featureStore';
import { knnAccuracy, l2Normalize, nearestNeighbours } from '../../stages/evaluator/knn';
import { tempFolder } from '../helpers/datasetFixtures';
import { labelledFeatures } from '../helpers/knnFixture';

const WIDTH = 24;

/** The whole-bank reference: one similarity matrix per query chunk over every bank row, one top-k. */
function wholeBankNeighbours(bank: tf.Tensor2D, query: tf.Tensor2D, k: number, chunk = 256): { values: Float32Array; rows: Int32Array } {
  const values = new Float32Array(query.shape[0] * k);
  const rows = new Int32Array(query.shape[0] * k);
  const bankTransposed = tf.tidy(() => tf.transpose(l2Normalize(bank)));
  for (let start = 0; start < query.shape[0]; start += chunk) {
    const size = Math.min(chunk, query.shape[0] - start);
    const top = tf.tidy(() => tf.topk(tf.matMul(l2Normalize(tf.slice(query, [start, 0], [size, -1])), bankTransposed), k, true));
    values.set(top.values.dataSync(), start * k);
    rows.set(top.indices.dataSync(), start * k);
    tf.dispose([top.values, top.indices]);
  }
  bankTransposed.dispose();
  return { values, rows };
}

function storeOf(features: tf.Tensor2D, options: ConstructorParameters<typeof FeatureStore>[1], pieces = 7): FeatureStore {
  // Appended in uneven pieces, as evaluation batches arrive.
  const store = new FeatureStore(features.shape[1], options);
  const rows = features.shape[0];
  for (let start = 0; start < rows; start += Math.ceil(rows / pieces)) {
    const piece = tf.slice(features, [start, 0], [Math.min(Math.ceil(rows / pieces), rows - start), -1]);
    store.append(piece);
    piece.dispose();
  }
  return store;
}

describe('evaluator: k-NN over a bank in blocks', () => {
  let bank: tf.Tensor2D;
  let query: tf.Tensor2D;
  let bankLabels: Int32Array;
  let queryLabels: Int32Array;
  before(() => {
    ({ bank, query, bankLabels, queryLabels } = labelledFeatures(WIDTH, 21, wholeBankNeighbours));
  });
  after(() => tf.dispose([bank, query]));

  it('blocks of 300 rows (the last one short) give the whole bank\'s neighbours and similarities exactly', () => {
    const store = storeOf(bank, { blockRows: 300 });
    try {
      expect(store.blockCount).to.equal(9);
      const expected = wholeBankNeighbours(bank, query, 50);
      const actual = nearestNeighbours(store, query, 50);
      expect(Array.from(actual.rows)).to.deep.equal(Array.from(expected.rows));
      expect(Array.from(actual.values)).to.deep.equal(Array.from(expected.values));
    } finally {
      store.dispose();
    }
  });

  it('a bank spilled to a file past its memory budget: the same accuracies as the bank in one tensor, and the file removed after', () => {
    const folder = tempFolder('vitpeft-knn-');
    const store = storeOf(bank, { blockRows: 256, memoryBudgetBytes: 3 * 256 * WIDTH * 4, spillDir: folder });
    const options = { k: [1, 5, 20, 200], temperature: 0.07, numClasses: 10 };
    try {
      expect(store.spilledBlocks).to.equal(6);
      expect(fs.readdirSync(folder)).to.have.length(1);
      const inTensor = knnAccuracy({ features: bank, labels: bankLabels }, { features: query, labels: queryLabels }, options);
      const inBlocks = knnAccuracy({ features: store, labels: bankLabels }, { features: query, labels: queryLabels }, options);
      expect([...inBlocks]).to.deep.equal([...inTensor]);
      expect(inTensor.get(1)).to.be.above(60);
      // The reference itself: k = 1 is right exactly where a query's label is its nearest row's.
      const nearest = wholeBankNeighbours(bank, query, 1).rows;
      const agreeing = Array.from(queryLabels).filter((label, i) => label === bankLabels[nearest[i]]).length;
      expect(inTensor.get(1)).to.be.closeTo((100 * agreeing) / 600, 1e-9);
    } finally {
      store.dispose();
    }
    expect(fs.readdirSync(folder)).to.deep.equal([]);
  });

  it('leaves no tensors, and refuses a budget without a folder', () => {
    const store = storeOf(bank, { blockRows: 500 });
    const before = tf.memory().numTensors;
    nearestNeighbours(store, query, 10);
    expect(tf.memory().numTensors).to.equal(before);
    store.dispose();
    expect(() => new FeatureStore(4, { memoryBudgetBytes: 100 })).to.throw(/memory budget needs a spillDir/);
  });
});
