// The bar a self-supervised digits model has to pass (issue 14): weighted k-NN@20 of a checkpoint's
// class tokens against k-NN on the raw pixels, with the same bank and queries. Raw pixels are
// scored as stored (values in [0, 1]) and as the ViT sees them ((x - mean) / std): cosine k-NN
// depends on the offset. Labels only measure.
//   node dist/scripts/knnBar.js models/pretrained/vit-digits-0-4-dino.safetensors \
//     'mnist:train?classes=0-4&perClass=400' 'mnist:test?classes=0-4'
// Options after the three arguments: --size N (28), --mean M (0.5), --std S (0.5), --k K (20).

import 'reflect-metadata';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../di/backend';
import { loadVit } from '../models/checkpoint/vitCheckpoint';
import { DatasetSource } from '../stages/dataset/source';
import { openDataUri } from '../stages/dataset/dataUri';
import { Transform } from '../stages/dataset/transforms';
import { knnAccuracy } from '../stages/evaluator/knn';

export interface Images {
  /** [N, H, W, C], values k/255. */
  readonly pixels: tf.Tensor4D;
  readonly labels: Int32Array;
  readonly numClasses: number;
}

/**
 * Every image of a source at its stored size (they must all have one shape): as stored, and as the
 * model's input through `transform` (the pipeline's own normalisation, grey repeated to RGB).
 */
export async function readAll(source: DatasetSource, where: string, transform: Transform): Promise<{ images: Images; input: tf.Tensor4D }> {
  const rows: Uint8Array[] = [];
  const labels = new Int32Array(source.size);
  let shape: [number, number, number] | undefined;
  let input: Float32Array | undefined;
  for (let i = 0; i < source.size; i++) {
    const sample = await source.read(i);
    if (sample === null) throw new Error(`${where}: image ${i} could not be read`);
    const own: [number, number, number] = [sample.height, sample.width, sample.channels];
    if (shape === undefined) shape = own;
    else if (own.some((d, j) => d !== shape![j])) throw new Error(`${where}: image ${i} is ${own.join('x')}, the first was ${shape.join('x')}; expected one size`);
    input ??= new Float32Array(source.size * sample.height * sample.width * 3);
    transform.writeNormalized(sample, input, i * sample.height * sample.width * 3);
    rows.push(sample.pixels);
    labels[i] = sample.label;
  }
  if (shape === undefined || input === undefined) throw new Error(`${where}: no images`);
  const flat = new Float32Array(source.size * shape[0] * shape[1] * shape[2]);
  rows.forEach((row, i) => flat.set(Float32Array.from(row, (v) => v / 255), i * row.length));
  return {
    images: { pixels: tf.tensor4d(flat, [source.size, ...shape]), labels, numClasses: source.numClasses },
    input: tf.tensor4d(input, [source.size, shape[0], shape[1], 3]),
  };
}

export interface BarScores {
  readonly model: number;
  readonly rawStored: number;
  readonly rawAsSeen: number;
}

/** Weighted k-NN (temperature 0.07) of the three representations; `embed` maps images in [0, 1] to features. */
export function barScores(bank: Images, query: Images, embed: (pixels: tf.Tensor4D) => tf.Tensor2D, options: { k: number; mean: number; std: number }): BarScores {
  const numClasses = Math.max(bank.numClasses, query.numClasses);
  const score = (bankFeatures: tf.Tensor2D, queryFeatures: tf.Tensor2D): number => {
    const accuracy = knnAccuracy({ features: bankFeatures, labels: bank.labels }, { features: queryFeatures, labels: query.labels }, { k: [options.k], temperature: 0.07, numClasses }).get(options.k);
    tf.dispose([bankFeatures, queryFeatures]);
    if (accuracy === undefined) throw new Error(`k-NN: no accuracy for k = ${options.k}`);
    return accuracy;
  };
  const flat = (pixels: tf.Tensor4D, shift: (x: tf.Tensor) => tf.Tensor) => tf.tidy(() => shift(pixels).reshape([pixels.shape[0], -1]) as tf.Tensor2D);
  const asSeen = (x: tf.Tensor) => x.sub(options.mean).div(options.std);
  return {
    model: score(embed(bank.pixels), embed(query.pixels)),
    rawStored: score(flat(bank.pixels, (x) => x.clone()), flat(query.pixels, (x) => x.clone())),
    rawAsSeen: score(flat(bank.pixels, asSeen), flat(query.pixels, asSeen)),
  };
}

function option(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(args[at + 1]);
  if (!Number.isFinite(value)) throw new Error(`${name}: expected a number, got ${JSON.stringify(args[at + 1])}`);
  return value;
}

export interface BarOptions {
  readonly size: number;
  readonly mean: number;
  readonly std: number;
  readonly k: number;
}

/** The bar's three scores for a checkpoint, a bank and queries (labels only measure). */
export async function measureBar(checkpoint: string, bankUri: string, queryUri: string, options: BarOptions): Promise<BarScores & { bankSize: number; querySize: number }> {
  const { size, mean, std, k } = options;
  const { model } = loadVit(checkpoint, { imageSize: size });
  const transform = new Transform({ name: 'native', steps: [], mean: [mean, mean, mean], std: [std, std, std] });
  const held: tf.Tensor[] = [];
  try {
    const bank = await readAll(await openDataUri(bankUri), bankUri, transform);
    held.push(bank.images.pixels, bank.input);
    const query = await readAll(await openDataUri(queryUri), queryUri, transform);
    held.push(query.images.pixels, query.input);
    const inputs = new Map([[bank.images.pixels, bank.input], [query.images.pixels, query.input]]);
    /** The class tokens of the model input read beside these stored pixels, 256 images a pass. */
    const embed = (pixels: tf.Tensor4D): tf.Tensor2D => {
      const input = inputs.get(pixels);
      if (input === undefined) throw new Error('knnBar: no model input for these images');
      const parts: tf.Tensor2D[] = [];
      for (let start = 0; start < input.shape[0]; start += 256) {
        const count = Math.min(256, input.shape[0] - start);
        parts.push(tf.tidy(() => model.embedCls(input.slice([start, 0, 0, 0], [count, -1, -1, -1]))));
      }
      const all = tf.concat(parts);
      tf.dispose(parts);
      return all;
    };
    return { ...barScores(bank.images, query.images, embed, { k, mean, std }), bankSize: bank.images.labels.length, querySize: query.images.labels.length };
  } finally {
    // Whatever was read, also when the queries could not be: the bank's tensors and the model.
    tf.dispose(held);
    model.dispose();
  }
}

async function main(args: string[]): Promise<void> {
  const [checkpoint, bankUri, queryUri] = args;
  if (!checkpoint || !bankUri || !queryUri || checkpoint.startsWith('--')) {
    process.stderr.write('usage: node dist/scripts/knnBar.js CHECKPOINT BANK_URI QUERY_URI [--size 28] [--mean 0.5] [--std 0.5] [--k 20]\n');
    process.exit(2);
  }
  const options = { size: option(args, '--size', 28), mean: option(args, '--mean', 0.5), std: option(args, '--std', 0.5), k: option(args, '--k', 20) };
  await initBackend('auto');
  const scores = await measureBar(checkpoint, bankUri, queryUri, options);
  process.stdout.write(
    `weighted k-NN@${options.k}, bank ${bankUri} (${scores.bankSize}), queries ${queryUri} (${scores.querySize}):\n` +
      `  ${checkpoint}: ${scores.model.toFixed(2)}%\n` +
      `  raw pixels as stored, [0, 1]: ${scores.rawStored.toFixed(2)}%\n` +
      `  raw pixels as the ViT sees them, (x - ${options.mean}) / ${options.std}: ${scores.rawAsSeen.toFixed(2)}%\n`,
  );
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: Error) => {
    process.stderr.write(`knnBar: ${error.message}\n`);
    process.exit(1);
  });
}
