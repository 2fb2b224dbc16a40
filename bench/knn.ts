// The k-NN bench case: DINO's weighted k-NN over a synthetic bank of `bankSize` x 768 features
// (kept in a FeatureStore in JS memory, as the evaluator keeps them) and 10,000 queries, k up to
// 200 as the paper reports. Features come from a cheap seeded generator, not the backend, so the
// case measures the search alone; the bank is built before the timed runs.

import { FeatureStore } from '../stages/evaluator/featureStore';
import { knnAccuracy } from '../stages/evaluator/knn';
import { Timing, timeRuns } from './measure';

const WIDTH = 768;
const CLASSES = 1000;

/** Deterministic uniform values in [-1, 1) (xorshift32). */
function fill(values: Float32Array, seed: number): void {
  let state = seed >>> 0 || 1;
  for (let i = 0; i < values.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    values[i] = (state >>> 0) / 2 ** 31 - 1;
  }
}

function syntheticStore(rows: number, seed: number): { store: FeatureStore; labels: Int32Array } {
  const store = new FeatureStore(WIDTH);
  const piece = new Float32Array(1024 * WIDTH);
  for (let start = 0; start < rows; start += 1024) {
    const count = Math.min(1024, rows - start);
    const values = piece.subarray(0, count * WIDTH);
    fill(values, seed + start);
    store.append(values);
  }
  return { store, labels: Int32Array.from({ length: rows }, (_, i) => (i * 7919) % CLASSES) };
}

export async function measureKnn(bankSize: number, queries: number, warmup: number, runs: number): Promise<Timing> {
  const bank = syntheticStore(bankSize, 1);
  const query = syntheticStore(queries, 2);
  try {
    return await timeRuns(() => void knnAccuracy({ features: bank.store, labels: bank.labels }, { features: query.store, labels: query.labels }, { k: [10, 20, 100, 200], temperature: 0.07, numClasses: CLASSES }), warmup, runs);
  } finally {
    bank.store.dispose();
    query.store.dispose();
  }
}
