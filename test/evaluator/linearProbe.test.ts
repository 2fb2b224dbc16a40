// Linear-probe retention: a logistic regression on frozen bank features, scored on queries —
// separable classes found, random labels left at chance, one step checked by hand, the same fit
// from a bank in small or spilled blocks as from one tensor, and no tensor left behind.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import { FeatureStore } from '../../stages/evaluator/featureStore';
import { linearProbeAccuracy, probeAccuracy, trainLinearProbe } from '../../stages/evaluator/linearProbe';
import { tempFolder } from '../helpers/datasetFixtures';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';

const WIDTH = 16;
const CLASSES = 4;

/** Rows around one centre per class (unit noise), on top of a large offset every row shares, as class tokens have. */
function clustered(rows: number, seed: number): { features: tf.Tensor2D; labels: Int32Array } {
  const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7 + seed) % CLASSES);
  const features = tf.tidy(() => {
    const centres = tf.mul(tf.randomNormal([CLASSES, WIDTH], 0, 1, 'float32', 5), 4);
    const noise = tf.randomNormal([rows, WIDTH], 0, 1, 'float32', seed);
    return tf.add(tf.add(tf.gather(centres, tf.tensor1d(labels, 'int32')), noise), 20) as tf.Tensor2D;
  });
  return { features, labels };
}

function storeOf(features: tf.Tensor2D, options: ConstructorParameters<typeof FeatureStore>[1]): FeatureStore {
  const store = new FeatureStore(features.shape[1], options);
  // Appended in uneven pieces, as evaluation batches arrive.
  for (let start = 0; start < features.shape[0]; start += 37) {
    const piece = tf.slice(features, [start, 0], [Math.min(37, features.shape[0] - start), -1]);
    store.append(piece);
    piece.dispose();
  }
  return store;
}

describe('evaluator: linear-probe retention', () => {
  const settings = { epochs: 100, weightDecay: 1e-3, numClasses: CLASSES };

  it('separates linearly separable classes: 100% on held-out queries', () => {
    const bank = clustered(400, 11);
    const query = clustered(200, 12);
    try {
      expect(linearProbeAccuracy(bank, query, settings)).to.equal(100);
    } finally {
      tf.dispose([bank.features, query.features]);
    }
  });

  it('stays near chance (25%) when the labels are random', () => {
    const bank = tf.randomNormal([800, WIDTH], 0, 1, 'float32', 31) as tf.Tensor2D;
    const query = tf.randomNormal([800, WIDTH], 0, 1, 'float32', 32) as tf.Tensor2D;
    // Labels from a hash of the index: unrelated to the features.
    const random = (n: number, salt: number) => Int32Array.from({ length: n }, (_, i) => ((Math.imul(i + salt, 2654435761) >>> 0) >>> 13) % CLASSES);
    try {
      const accuracy = linearProbeAccuracy({ features: bank, labels: random(800, 1) }, { features: query, labels: random(800, 2) }, settings);
      // Binomial standard deviation at 800 queries: 1.5 points; 5 of them either side.
      expect(accuracy).to.be.within(17.5, 32.5);
    } finally {
      tf.dispose([bank, query]);
    }
  });

  it('takes the hand-computed first step on a two-row bank', () => {
    // x = [2, 0], labels [1, 0]: mean 1, variance 1, so z = [1, -1] (up to the 1e-6 epsilon).
    // From zero weights every softmax is [0.5, 0.5]; the gradient on the standardised weights is
    // mean(z (p - y)) = [0.5, -0.5] and on the biases mean(p - y) = 0. The covariance's eigenvalue
    // is 1 (1.1 with the margin), so L = 0.5 * 1.1 = 0.55 and the step is 1 / 0.55:
    // w = [-0.5, 0.5] / 0.55 = [-0.90909, 0.90909]; on raw features b = -mean * w = [0.90909, -0.90909].
    const features = tf.tensor2d([[2], [0]]);
    try {
      const probe = trainLinearProbe({ features, labels: Int32Array.from([1, 0]) }, { epochs: 1, weightDecay: 0, numClasses: 2 });
      expect(probe.lipschitz).to.be.closeTo(0.55, 1e-6);
      expect(maxAbsDifference(probe.weights, [-0.5 / 0.55, 0.5 / 0.55])).to.be.below(1e-5);
      expect(maxAbsDifference(probe.bias, [0.5 / 0.55, -0.5 / 0.55])).to.be.below(1e-5);
      // Logits' difference 1.818 (x - 1): class 1 above x = 1, class 0 below.
      const query = tf.tensor2d([[1.5], [0.5], [3]]);
      expect(probeAccuracy(probe, { features: query, labels: Int32Array.from([1, 0, 1]) })).to.equal(100);
      query.dispose();
    } finally {
      features.dispose();
    }
  });

  it('fits the same probe from a bank in small blocks, and spilled to a file, as from one tensor', () => {
    const bank = clustered(500, 41);
    const query = clustered(150, 42);
    const spillDir = tempFolder('vitpeft-probe-spill-');
    // Overlapping classes, so the accuracy is not simply 100%.
    const noisy = tf.tidy(() => tf.add(bank.features, tf.randomNormal(bank.features.shape, 0, 4, 'float32', 43)) as tf.Tensor2D);
    const noisyQuery = { features: tf.tidy(() => tf.add(query.features, tf.randomNormal(query.features.shape, 0, 4, 'float32', 44)) as tf.Tensor2D), labels: query.labels };
    const inBlocks = storeOf(noisy, { blockRows: 64 });
    const spilled = storeOf(noisy, { blockRows: 50, memoryBudgetBytes: 3 * 50 * WIDTH * 4, spillDir });
    try {
      expect(inBlocks.blockCount).to.equal(8);
      expect(spilled.spilledBlocks).to.equal(7);
      const whole = trainLinearProbe({ features: noisy, labels: bank.labels }, settings);
      for (const store of [inBlocks, spilled]) {
        const blocked = trainLinearProbe({ features: store, labels: bank.labels }, settings);
        expect(maxAbsDifference(blocked.weights, whole.weights)).to.be.below(1e-4);
        expect(maxAbsDifference(blocked.bias, whole.bias)).to.be.below(1e-3);
        expect(probeAccuracy(blocked, noisyQuery)).to.equal(probeAccuracy(whole, noisyQuery));
      }
      const accuracy = probeAccuracy(whole, noisyQuery);
      expect(accuracy).to.be.above(25).and.below(100);
    } finally {
      inBlocks.dispose();
      spilled.dispose();
      tf.dispose([bank.features, query.features, noisy, noisyQuery.features]);
      fs.rmSync(spillDir, { recursive: true, force: true });
    }
  });

  it('leaves no tensor behind', () => {
    const bank = clustered(120, 51);
    const store = storeOf(bank.features, { blockRows: 32 });
    try {
      expect(tensorLeak(() => linearProbeAccuracy({ features: store, labels: bank.labels }, bank, { ...settings, epochs: 5 }))).to.equal(0);
    } finally {
      store.dispose();
      bank.features.dispose();
    }
  });

  it('refuses labels outside the classes, and a bank without rows', () => {
    const features = tf.tensor2d([[1], [2]]);
    try {
      expect(() => trainLinearProbe({ features, labels: Int32Array.from([0, 2]) }, { ...settings, numClasses: 2 })).to.throw('linear probe: the bank label 2 is outside [0, 2)');
      expect(() => trainLinearProbe({ features: new FeatureStore(3), labels: new Int32Array(0) }, settings)).to.throw('linear probe: the bank is empty');
    } finally {
      features.dispose();
    }
  });
});
