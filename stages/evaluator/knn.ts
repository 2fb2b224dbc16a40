// DINO's weighted k-nearest-neighbour classifier (eval_knn.py): features L2-normalised, cosine
// similarity to every bank feature, the k most similar vote for their class with weight
// exp(similarity / T). Accuracy is reported for several k from one top-k search.
//
// The bank need not fit the compute heap: its features live in a FeatureStore (JS memory or a
// file) and go through the backend one block at a time; each query keeps a running top-k across
// the blocks (merged in JS, ties to the earlier bank row as one top-k over the whole bank
// does), so peak memory is set by the block and query-chunk sizes, never by the bank.

import * as tf from '@tensorflow/tfjs-core';
import { FeatureStore } from './featureStore';

export interface KnnOptions {
  readonly k: readonly number[];
  readonly temperature: number;
  readonly numClasses: number;
  /** Queries per similarity matrix (memory: chunk x bank block floats). */
  readonly chunk?: number;
}

export interface FeatureSetInput {
  /** Rows of features: a tensor (small sets) or a store (any size). */
  readonly features: tf.Tensor2D | FeatureStore;
  readonly labels: Int32Array;
}

export function l2Normalize(features: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(features, tf.maximum(tf.norm(features, 'euclidean', 1, true), 1e-12)));
}

function rowCount(features: tf.Tensor2D | FeatureStore): number {
  return features instanceof FeatureStore ? features.rows : features.shape[0];
}

function widthOf(features: tf.Tensor2D | FeatureStore): number {
  return features instanceof FeatureStore ? features.width : features.shape[1];
}

/** A store over a tensor's rows (read once), or the store itself. */
export function asStore(features: tf.Tensor2D | FeatureStore): { store: FeatureStore; owned: boolean } {
  if (features instanceof FeatureStore) return { store: features, owned: false };
  const store = new FeatureStore(features.shape[1]);
  store.append(features);
  return { store, owned: true };
}

/** The running top-k of every query: similarities descending, bank rows; filled with -Infinity / -1. */
class RunningTopK {
  readonly values: Float32Array;
  readonly rows: Int32Array;
  private readonly mergedValues: Float32Array;
  private readonly mergedRows: Int32Array;

  constructor(
    queries: number,
    readonly k: number,
  ) {
    this.values = new Float32Array(queries * k).fill(-Infinity);
    this.rows = new Int32Array(queries * k).fill(-1);
    this.mergedValues = new Float32Array(k);
    this.mergedRows = new Int32Array(k);
  }

  /** Merges a block's top candidates (descending per query, `width` per query) into query q0.. rows. */
  merge(q0: number, queries: number, values: ArrayLike<number>, indices: ArrayLike<number>, width: number, rowOffset: number): void {
    const { k } = this;
    for (let q = 0; q < queries; q++) {
      const base = (q0 + q) * k;
      let a = 0;
      let b = 0;
      for (let out = 0; out < k; out++) {
        const candidate = b < width ? values[q * width + b] : -Infinity;
        // Ties go to the running list: its rows come from earlier blocks.
        if (a < k && this.values[base + a] >= candidate) {
          this.mergedValues[out] = this.values[base + a];
          this.mergedRows[out] = this.rows[base + a];
          a++;
        } else {
          this.mergedValues[out] = candidate;
          this.mergedRows[out] = b < width ? indices[q * width + b] + rowOffset : -1;
          b++;
        }
      }
      this.values.set(this.mergedValues, base);
      this.rows.set(this.mergedRows, base);
    }
  }
}

/** Top-1 accuracy in percent for each k; bank and query features need not be normalised. */
export function knnAccuracy(bank: FeatureSetInput, query: FeatureSetInput, options: KnnOptions): Map<number, number> {
  const bankSize = rowCount(bank.features);
  const querySize = rowCount(query.features);
  if (bank.labels.length !== bankSize) throw new Error(`k-NN: bank has ${bankSize} features but ${bank.labels.length} labels`);
  if (query.labels.length !== querySize) throw new Error(`k-NN: ${querySize} query features but ${query.labels.length} labels`);
  const width = widthOf(bank.features);
  if (width !== widthOf(query.features)) throw new Error(`k-NN: bank features are ${width}-d, queries ${widthOf(query.features)}-d`);
  for (const k of options.k) if (!Number.isInteger(k) || k < 1) throw new Error(`k-NN: k must be a positive integer, got ${k}`);
  for (const labels of [bank.labels, query.labels]) {
    for (const label of labels) {
      if (!(label >= 0 && label < options.numClasses)) throw new Error(`k-NN: label ${label} is outside [0, ${options.numClasses})`);
    }
  }
  const maxK = Math.min(Math.max(...options.k), bankSize);
  const top = nearestNeighbours(bank.features, query.features, maxK, options.chunk ?? 256);
  return vote(top, bank.labels, query.labels, options, maxK);
}

/** Each query's k most similar bank rows (cosine), similarities descending: [queries x k] each. */
export function nearestNeighbours(bankFeatures: tf.Tensor2D | FeatureStore, queryFeatures: tf.Tensor2D | FeatureStore, maxK: number, chunk = 256): { values: Float32Array; rows: Int32Array } {
  const width = widthOf(bankFeatures);
  const querySize = rowCount(queryFeatures);
  const bankStore = asStore(bankFeatures);
  const queryStore = asStore(queryFeatures);
  try {
    const top = new RunningTopK(querySize, maxK);
    // Queries normalised once, in chunks, kept in JS memory.
    const queries = new Float32Array(querySize * width);
    let filled = 0;
    for (let b = 0; b < queryStore.store.blockCount; b++) {
      const rows = queryStore.store.block(b);
      const normalised = tf.tidy(() => l2Normalize(tf.tensor2d(rows, [rows.length / width, width])));
      queries.set(normalised.dataSync(), filled);
      filled += rows.length;
      normalised.dispose();
    }
    let rowOffset = 0;
    for (let b = 0; b < bankStore.store.blockCount; b++) {
      const rows = bankStore.store.block(b);
      const blockSize = rows.length / width;
      const bankTransposed = tf.tidy(() => tf.transpose(l2Normalize(tf.tensor2d(rows, [blockSize, width]))));
      const candidates = Math.min(maxK, blockSize);
      try {
        for (let start = 0; start < querySize; start += chunk) {
          const size = Math.min(chunk, querySize - start);
          const { values, indices } = tf.tidy(() => {
            const chunkQueries = tf.tensor2d(queries.subarray(start * width, (start + size) * width), [size, width]);
            return tf.topk(tf.matMul(chunkQueries, bankTransposed), candidates, true);
          });
          top.merge(start, size, values.dataSync(), indices.dataSync(), candidates, rowOffset);
          tf.dispose([values, indices]);
        }
      } finally {
        bankTransposed.dispose();
      }
      rowOffset += blockSize;
    }
    return { values: top.values, rows: top.rows };
  } finally {
    if (bankStore.owned) bankStore.store.dispose();
    if (queryStore.owned) queryStore.store.dispose();
  }
}

function vote(top: { values: Float32Array; rows: Int32Array }, bankLabels: Int32Array, queryLabels: Int32Array, options: KnnOptions, maxK: number): Map<number, number> {
  const correct = new Map(options.k.map((k) => [k, 0]));
  const votes = new Float64Array(options.numClasses);
  for (let q = 0; q < queryLabels.length; q++) {
    for (const k of options.k) {
      votes.fill(0);
      for (let j = 0; j < Math.min(k, maxK); j++) {
        const label = bankLabels[top.rows[q * maxK + j]];
        votes[label] += Math.exp(top.values[q * maxK + j] / options.temperature);
      }
      let best = 0;
      for (let c = 1; c < votes.length; c++) if (votes[c] > votes[best]) best = c;
      if (best === queryLabels[q]) correct.set(k, (correct.get(k) ?? 0) + 1);
    }
  }
  return new Map(options.k.map((k) => [k, (100 * (correct.get(k) ?? 0)) / queryLabels.length]));
}
