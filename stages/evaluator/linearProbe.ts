// Linear-probe retention (DINO's other standard evaluation, eval_linear.py): a multinomial
// logistic regression trained on the frozen features of the retention bank, scored on the
// queries.
//
// Features are standardised with the bank's per-dimension mean and variance (as MAE's linear
// probe does with a BatchNorm without affine before its linear layer): the fit is then the same
// whatever the backbone's feature scale, so fixed defaults serve every model. L2-normalising
// instead would keep the large component that all of a ViT's class tokens share, and gradient
// descent would crawl along it.
//
// Deterministic and block-wise: weights start at zero, and each epoch is one full-batch gradient
// step (the gradient summed over the FeatureStore's blocks, so a bank never has to be one
// tensor), accelerated by Nesterov momentum (FISTA's sequence) with step 1/L, where L bounds the
// loss's curvature: 1/2 (softmax cross-entropy's bound) times the largest eigenvalue of the
// standardised features' covariance (power iteration, with a margin), plus the weight decay.
// No learning rate to tune: the step follows from the bank. The standardisation is folded into
// the weights, so every pass reads the stored features as they are.

import * as tf from '@tensorflow/tfjs-core';
import { FeatureStore } from './featureStore';
import { FeatureSetInput, asStore } from './knn';

export interface LinearProbeSettings {
  /** Full-batch gradient steps over the bank. */
  readonly epochs: number;
  /** L2 penalty on the weights (not the biases), added to the mean cross-entropy. */
  readonly weightDecay: number;
}

export const DEFAULT_LINEAR_PROBE: LinearProbeSettings = { epochs: 300, weightDecay: 1e-3 };

export interface LinearProbeOptions extends LinearProbeSettings {
  readonly numClasses: number;
}

/** A fitted probe on raw features: logits = x · weights (width x classes) + bias. */
export interface LinearProbe {
  readonly width: number;
  readonly numClasses: number;
  /** Row-major [width, classes], standardisation folded in. */
  readonly weights: Float32Array;
  readonly bias: Float32Array;
  /** The loss curvature bound the step was taken from. */
  readonly lipschitz: number;
}

/** Added to each variance before its square root, as a BatchNorm does: constant features stay finite. */
const VARIANCE_EPSILON = 1e-6;
const POWER_ITERATIONS = 100;
/** Power iteration approaches the top eigenvalue from below. */
const EIGENVALUE_MARGIN = 1.1;

function widthOf(features: tf.Tensor2D | FeatureStore): number {
  return features instanceof FeatureStore ? features.width : features.shape[1];
}

function checkLabels(labels: Int32Array, rows: number, numClasses: number, what: string): void {
  if (labels.length !== rows) throw new Error(`linear probe: ${what} has ${rows} features but ${labels.length} labels`);
  for (const label of labels) if (!(label >= 0 && label < numClasses)) throw new Error(`linear probe: ${what} label ${label} is outside [0, ${numClasses})`);
}

/** Per-dimension mean and standard deviation over every row of the store. */
function moments(store: FeatureStore): { mean: Float64Array; scale: Float64Array } {
  const { width } = store;
  const sum = new Float64Array(width);
  for (let b = 0; b < store.blockCount; b++) {
    const rows = store.block(b);
    for (let i = 0; i < rows.length; i++) sum[i % width] += rows[i];
  }
  const mean = sum.map((s) => s / store.rows);
  const squares = new Float64Array(width);
  for (let b = 0; b < store.blockCount; b++) {
    const rows = store.block(b);
    for (let i = 0; i < rows.length; i++) squares[i % width] += (rows[i] - mean[i % width]) ** 2;
  }
  return { mean, scale: squares.map((s) => Math.sqrt(s / store.rows + VARIANCE_EPSILON)) };
}

/** The largest eigenvalue of the standardised features' covariance. */
function topEigenvalue(store: FeatureStore, mean: Float64Array, scale: Float64Array): number {
  const { width } = store;
  const covariance = new Float64Array(width * width);
  const meanTensor = tf.tensor1d(Float32Array.from(mean));
  const scaleTensor = tf.tensor1d(Float32Array.from(scale));
  try {
    for (let b = 0; b < store.blockCount; b++) {
      const rows = store.block(b);
      const product = tf.tidy(() => {
        const z = tf.div(tf.sub(tf.tensor2d(rows, [rows.length / width, width]), meanTensor), scaleTensor);
        return tf.matMul(z, z, true, false);
      });
      const values = product.dataSync();
      product.dispose();
      for (let i = 0; i < values.length; i++) covariance[i] += values[i] / store.rows;
    }
  } finally {
    tf.dispose([meanTensor, scaleTensor]);
  }
  let vector = new Float64Array(width).fill(1 / Math.sqrt(width));
  let eigenvalue = 0;
  for (let iteration = 0; iteration < POWER_ITERATIONS; iteration++) {
    const next = new Float64Array(width);
    for (let i = 0; i < width; i++) {
      let s = 0;
      for (let j = 0; j < width; j++) s += covariance[i * width + j] * vector[j];
      next[i] = s;
    }
    let norm = 0;
    for (const x of next) norm += x * x;
    norm = Math.sqrt(norm);
    if (norm === 0) return 0;
    eigenvalue = norm;
    vector = next.map((x) => x / norm);
  }
  return eigenvalue;
}

/**
 * Weights on standardised features [width, classes] and biases, as weights and bias on raw
 * features: w_raw = w / scale, b_raw = b - sum_j mean_j w_j / scale_j.
 */
function foldStandardisation(weights: Float64Array, bias: Float64Array, mean: Float64Array, scale: Float64Array, numClasses: number): { weights: Float32Array; bias: Float32Array } {
  const raw = new Float32Array(weights.length);
  const rawBias = Float32Array.from(bias);
  for (let j = 0; j < mean.length; j++) {
    for (let c = 0; c < numClasses; c++) {
      const w = weights[j * numClasses + c] / scale[j];
      raw[j * numClasses + c] = w;
      rawBias[c] -= mean[j] * w;
    }
  }
  return { weights: raw, bias: rawBias };
}

/**
 * Gradient of the mean cross-entropy (without the weight decay) at the given standardised
 * weights, over every block: with D = softmax(logits) - onehot(labels), dW = Z^T D / n and
 * db = sum(D) / n, where Z^T D = (X^T D - mean sum(D)) / scale.
 */
function gradient(store: FeatureStore, labels: Int32Array, weights: Float64Array, bias: Float64Array, mean: Float64Array, scale: Float64Array, numClasses: number): { weights: Float64Array; bias: Float64Array } {
  const { width } = store;
  const folded = foldStandardisation(weights, bias, mean, scale, numClasses);
  const xtd = new Float64Array(width * numClasses);
  const sumD = new Float64Array(numClasses);
  const weightTensor = tf.tensor2d(folded.weights, [width, numClasses]);
  const biasTensor = tf.tensor1d(folded.bias);
  try {
    let offset = 0;
    for (let b = 0; b < store.blockCount; b++) {
      const rows = store.block(b);
      const count = rows.length / width;
      const [product, columnSums] = tf.tidy(() => {
        const x = tf.tensor2d(rows, [count, width]);
        const probabilities = tf.softmax(tf.add(tf.matMul(x, weightTensor), biasTensor));
        const onehot = tf.oneHot(tf.tensor1d(labels.subarray(offset, offset + count), 'int32'), numClasses);
        const d = tf.sub(probabilities, onehot);
        return [tf.matMul(x, d, true, false), tf.sum(d, 0)];
      });
      const productValues = product.dataSync();
      const sumValues = columnSums.dataSync();
      tf.dispose([product, columnSums]);
      for (let i = 0; i < productValues.length; i++) xtd[i] += productValues[i];
      for (let c = 0; c < numClasses; c++) sumD[c] += sumValues[c];
      offset += count;
    }
  } finally {
    tf.dispose([weightTensor, biasTensor]);
  }
  const n = store.rows;
  const gradWeights = new Float64Array(width * numClasses);
  for (let j = 0; j < width; j++) {
    for (let c = 0; c < numClasses; c++) gradWeights[j * numClasses + c] = (xtd[j * numClasses + c] - mean[j] * sumD[c]) / (scale[j] * n);
  }
  return { weights: gradWeights, bias: sumD.map((s) => s / n) };
}

/** Fits the probe on the bank; every tensor it makes is disposed before it returns. */
export function trainLinearProbe(bank: FeatureSetInput, options: LinearProbeOptions): LinearProbe {
  const { epochs, weightDecay, numClasses } = options;
  if (!(Number.isInteger(epochs) && epochs > 0)) throw new Error(`linear probe: epochs must be a positive integer, got ${epochs}`);
  if (!(weightDecay >= 0 && Number.isFinite(weightDecay))) throw new Error(`linear probe: weightDecay must be a non-negative number, got ${weightDecay}`);
  if (!(Number.isInteger(numClasses) && numClasses >= 2)) throw new Error(`linear probe: needs at least 2 classes, got ${numClasses}`);
  const { store, owned } = asStore(bank.features);
  try {
    if (store.rows === 0) throw new Error('linear probe: the bank is empty');
    checkLabels(bank.labels, store.rows, numClasses, 'the bank');
    const { width } = store;
    const { mean, scale } = moments(store);
    // The bias's input is the constant 1, orthogonal to the centred features: eigenvalue 1.
    const lipschitz = 0.5 * Math.max(EIGENVALUE_MARGIN * topEigenvalue(store, mean, scale), 1) + weightDecay;
    const step = 1 / lipschitz;
    let weights = new Float64Array(width * numClasses);
    let bias = new Float64Array(numClasses);
    let previousWeights = weights;
    let previousBias = bias;
    let t = 1;
    for (let epoch = 0; epoch < epochs; epoch++) {
      const nextT = (1 + Math.sqrt(1 + 4 * t * t)) / 2;
      const momentum = (t - 1) / nextT;
      const lookWeights = weights.map((w, i) => w + momentum * (w - previousWeights[i]));
      const lookBias = bias.map((b, i) => b + momentum * (b - previousBias[i]));
      const grad = gradient(store, bank.labels, lookWeights, lookBias, mean, scale, numClasses);
      previousWeights = weights;
      previousBias = bias;
      weights = lookWeights.map((w, i) => w - step * (grad.weights[i] + weightDecay * w));
      bias = lookBias.map((b, i) => b - step * grad.bias[i]);
      t = nextT;
    }
    return { width, numClasses, ...foldStandardisation(weights, bias, mean, scale, numClasses), lipschitz };
  } finally {
    if (owned) store.dispose();
  }
}

/** Top-1 accuracy (%) of a fitted probe on the given features. */
export function probeAccuracy(probe: LinearProbe, query: FeatureSetInput): number {
  if (widthOf(query.features) !== probe.width) throw new Error(`linear probe: fitted on ${probe.width}-d features, queries are ${widthOf(query.features)}-d`);
  const { store, owned } = asStore(query.features);
  try {
    checkLabels(query.labels, store.rows, probe.numClasses, 'the queries');
    if (store.rows === 0) return NaN;
    const weightTensor = tf.tensor2d(probe.weights, [probe.width, probe.numClasses]);
    const biasTensor = tf.tensor1d(probe.bias);
    let correct = 0;
    let offset = 0;
    try {
      for (let b = 0; b < store.blockCount; b++) {
        const rows = store.block(b);
        const count = rows.length / probe.width;
        const predicted = tf.tidy(() => tf.argMax(tf.add(tf.matMul(tf.tensor2d(rows, [count, probe.width]), weightTensor), biasTensor), 1));
        const values = predicted.dataSync();
        predicted.dispose();
        for (let i = 0; i < count; i++) if (values[i] === query.labels[offset + i]) correct++;
        offset += count;
      }
    } finally {
      tf.dispose([weightTensor, biasTensor]);
    }
    return (100 * correct) / store.rows;
  } finally {
    if (owned) store.dispose();
  }
}

/** Fits the probe on the bank and returns its top-1 accuracy (%) on the queries. */
export function linearProbeAccuracy(bank: FeatureSetInput, query: FeatureSetInput, options: LinearProbeOptions): number {
  if (widthOf(bank.features) !== widthOf(query.features)) throw new Error(`linear probe: bank features are ${widthOf(bank.features)}-d, queries ${widthOf(query.features)}-d`);
  return probeAccuracy(trainLinearProbe(bank, options), query);
}
