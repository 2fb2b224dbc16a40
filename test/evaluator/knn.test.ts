import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { knnAccuracy } from '../../stages/evaluator/knn';

describe('weighted k-NN (DINO)', () => {
  it('classifies by cosine similarity with exp(sim/T) weights', () => {
    // bank: class 0 along +x, class 1 along +y; scale must not matter (cosine).
    const bank = { features: tf.tensor2d([[10, 0], [1, 0.1], [0, 5], [0.1, 1]]), labels: Int32Array.from([0, 0, 1, 1]) };
    const query = { features: tf.tensor2d([[1, 0.2], [0.2, 1], [-1, 0.1]]), labels: Int32Array.from([0, 1, 0]) };
    const accuracy = knnAccuracy(bank, query, { k: [1, 4], temperature: 0.07, numClasses: 2 });
    // [-1, 0.1] is nearest to [0, 5] (cosine 0.0995, class 1), so the third query is wrong for every k.
    expect(accuracy.get(1)).to.be.closeTo(200 / 3, 1e-9);
    expect(accuracy.get(4)).to.be.closeTo(200 / 3, 1e-9);
    tf.dispose([bank.features, query.features]);
  });

  it('weights votes: two distant neighbours lose to one close neighbour at low temperature', () => {
    const bank = { features: tf.tensor2d([[1, 0], [0.6, 0.8], [0.6, -0.8]]), labels: Int32Array.from([0, 1, 1]) };
    const query = { features: tf.tensor2d([[1, 0.05]]), labels: Int32Array.from([0]) };
    expect(knnAccuracy(bank, query, { k: [3], temperature: 0.07, numClasses: 2 }).get(3)).to.equal(100);
    expect(knnAccuracy(bank, query, { k: [3], temperature: 100, numClasses: 2 }).get(3)).to.equal(0);
    tf.dispose([bank.features, query.features]);
  });

  it('rejects labels outside the class range', () => {
    const f = tf.tensor2d([[1, 0]]);
    expect(() => knnAccuracy({ features: f, labels: Int32Array.from([3]) }, { features: f, labels: Int32Array.from([0]) }, { k: [1], temperature: 0.07, numClasses: 2 })).to.throw(/label 3 is outside \[0, 2\)/);
    f.dispose();
  });
});
