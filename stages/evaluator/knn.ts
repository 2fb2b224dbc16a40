// DINO's weighted k-nearest-neighbour classifier (eval_knn.py): features L2-normalised, cosine
// similarity to every bank feature, the k most similar vote for their class with weight
// exp(similarity / T). Accuracy is reported for several k from one top-k search.

import * as tf from '@tensorflow/tfjs-core';

export interface KnnOptions {
  readonly k: readonly number[];
  readonly temperature: number;
  readonly numClasses: number;
  /** Queries per similarity matrix (memory: chunk x bank size floats). */
  readonly chunk?: number;
}

export function l2Normalize(features: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(features, tf.maximum(tf.norm(features, 'euclidean', 1, true), 1e-12)));
}

/** Top-1 accuracy in percent for each k; bank and query features need not be normalised. */
export function knnAccuracy(
  bank: { features: tf.Tensor2D; labels: Int32Array },
  query: { features: tf.Tensor2D; labels: Int32Array },
  options: KnnOptions,
): Map<number, number> {
  const bankSize = bank.features.shape[0];
  if (bank.labels.length !== bankSize) throw new Error(`k-NN: bank has ${bankSize} features but ${bank.labels.length} labels`);
  if (query.labels.length !== query.features.shape[0]) throw new Error(`k-NN: ${query.features.shape[0]} query features but ${query.labels.length} labels`);
  if (bank.features.shape[1] !== query.features.shape[1]) throw new Error(`k-NN: bank features are ${bank.features.shape[1]}-d, queries ${query.features.shape[1]}-d`);
  for (const k of options.k) if (!Number.isInteger(k) || k < 1) throw new Error(`k-NN: k must be a positive integer, got ${k}`);
  for (const labels of [bank.labels, query.labels]) {
    for (const label of labels) {
      if (!(label >= 0 && label < options.numClasses)) throw new Error(`k-NN: label ${label} is outside [0, ${options.numClasses})`);
    }
  }
  const maxK = Math.min(Math.max(...options.k), bankSize);
  const correct = new Map(options.k.map((k) => [k, 0]));
  const bankTransposed = tf.tidy(() => tf.transpose(l2Normalize(bank.features)));
  const chunk = options.chunk ?? 256;
  const votes = new Float64Array(options.numClasses);
  try {
    for (let start = 0; start < query.labels.length; start += chunk) {
      const size = Math.min(chunk, query.labels.length - start);
      const { values, indices } = tf.tidy(() => {
        const queries = l2Normalize(tf.slice(query.features, [start, 0], [size, -1]));
        return tf.topk(tf.matMul(queries, bankTransposed), maxK, true);
      });
      const similarity = values.dataSync();
      const neighbours = indices.dataSync();
      tf.dispose([values, indices]);
      for (let q = 0; q < size; q++) {
        for (const k of options.k) {
          votes.fill(0);
          for (let j = 0; j < Math.min(k, maxK); j++) {
            const label = bank.labels[neighbours[q * maxK + j]];
            votes[label] += Math.exp(similarity[q * maxK + j] / options.temperature);
          }
          let best = 0;
          for (let c = 1; c < votes.length; c++) if (votes[c] > votes[best]) best = c;
          if (best === query.labels[start + q]) correct.set(k, (correct.get(k) ?? 0) + 1);
        }
      }
    }
  } finally {
    bankTransposed.dispose();
  }
  return new Map(options.k.map((k) => [k, (100 * (correct.get(k) ?? 0)) / query.labels.length]));
}
