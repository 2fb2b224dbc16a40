// A synthetic k-NN problem for the chunked and half-precision k-NN tests: 2,500 bank rows and 600
// queries of random features in 10 classes, two queries in three labelled by their nearest bank
// row's class, so accuracies are far from chance and differ across k.

import * as tf from '@tensorflow/tfjs';

export interface LabelledFeatures {
  readonly bank: tf.Tensor2D;
  readonly query: tf.Tensor2D;
  readonly bankLabels: Int32Array;
  readonly queryLabels: Int32Array;
}

/** `nearest(bank, query, 1).rows[q]` is query q's nearest bank row (whichever search the test trusts). */
export function labelledFeatures(width: number, seed: number, nearest: (bank: tf.Tensor2D, query: tf.Tensor2D, k: number) => { rows: Int32Array }): LabelledFeatures {
  const bank = tf.randomNormal([2500, width], 0, 1, 'float32', seed) as tf.Tensor2D;
  const query = tf.randomNormal([600, width], 0, 1, 'float32', seed + 1) as tf.Tensor2D;
  const bankLabels = Int32Array.from({ length: 2500 }, (_, i) => (i * 7) % 10);
  const rows = nearest(bank, query, 1).rows;
  const queryLabels = Int32Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? (i * 3) % 10 : bankLabels[rows[i]]));
  return { bank, query, bankLabels, queryLabels };
}
