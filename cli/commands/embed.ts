// `vitpeft embed`: features (class token after the final norm) and, when the checkpoint has a
// head, logits for every image of a dataset, written as safetensors — also how features are cached.

import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { SafetensorsFile, WritableTensor, writeSafetensors } from '../../models/checkpoint/safetensors';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { IMAGENET_MEAN, IMAGENET_STD, normalizeImages } from '../../stages/dataset/normalize';
import { UsageError } from '../errors';
import { startBackend } from '../main';
import { parseInteger, parseNumberList } from '../options';

interface EmbedOptions {
  checkpoint: string;
  data: string;
  out: string;
  mean: number[];
  std: number[];
  batch: number;
  heads?: number;
}

/** Reads `images` (U8 [N,H,W,C]) and optional `labels` from a safetensors data file. */
export function readImageFile(path: string): { images: Uint8Array; shape: [number, number, number, number]; labels?: Int32Array } {
  const file = SafetensorsFile.open(path);
  try {
    const info = file.info('images');
    if (info.dtype !== 'U8') throw new UsageError(`${path}: tensor 'images' has dtype ${info.dtype}, expected U8`);
    if (info.shape.length !== 4) throw new UsageError(`${path}: tensor 'images' has shape [${info.shape}], expected rank 4 [N, H, W, C]`);
    const shape = info.shape as [number, number, number, number];
    let labels: Int32Array | undefined;
    if (file.has('labels')) {
      const labelInfo = file.info('labels');
      if (labelInfo.shape.length !== 1 || labelInfo.shape[0] !== shape[0]) {
        throw new UsageError(`${path}: tensor 'labels' has shape [${labelInfo.shape}], expected [${shape[0]}] (one per image)`);
      }
      labels = file.readInt32('labels');
    }
    return { images: file.readUint8('images'), shape, labels };
  } finally {
    file.close();
  }
}

export async function embed(options: EmbedOptions): Promise<{ count: number; width: number; classes: number }> {
  const prefix = 'safetensors:';
  if (!options.data.startsWith(prefix)) throw new UsageError(`--data: expected safetensors:<file>, got '${options.data}'`);
  const dataPath = options.data.slice(prefix.length);
  const { model } = loadVit(options.checkpoint, { heads: options.heads });
  try {
    const { images, shape, labels } = readImageFile(dataPath);
    const [count, height, width, channels] = shape;
    const config = model.config;
    if (channels !== config.inChannels) throw new UsageError(`${dataPath}: images have ${channels} channels, the model takes ${config.inChannels}`);
    if (height % config.patchSize !== 0 || width % config.patchSize !== 0) {
      throw new UsageError(`${dataPath}: images are ${height}x${width}, not a multiple of the model's patch size ${config.patchSize}`);
    }
    const features = new Float32Array(count * config.width);
    const logits = config.numClasses > 0 ? new Float32Array(count * config.numClasses) : undefined;
    const pixelsPerImage = height * width * channels;
    for (let start = 0; start < count; start += options.batch) {
      const size = Math.min(options.batch, count - start);
      const batchFeatures = tf.tidy(() => {
        const raw = tf.tensor4d(images.subarray(start * pixelsPerImage, (start + size) * pixelsPerImage), [size, height, width, channels], 'int32');
        return model.embedCls(normalizeImages(raw, options.mean, options.std));
      });
      features.set(await batchFeatures.data(), start * config.width);
      if (logits) {
        const batchLogits = model.forwardHead(batchFeatures);
        logits.set(await batchLogits.data(), start * config.numClasses);
        batchLogits.dispose();
      }
      batchFeatures.dispose();
    }
    const tensors: Array<[string, WritableTensor]> = [['features', { dtype: 'F32', shape: [count, config.width], data: features }]];
    if (logits) tensors.push(['logits', { dtype: 'F32', shape: [count, config.numClasses], data: logits }]);
    if (labels) tensors.push(['labels', { dtype: 'I64', shape: [count], data: BigInt64Array.from(labels, (l) => BigInt(l)) }]);
    writeSafetensors(options.out, tensors, { checkpoint: options.checkpoint, data: options.data, mean: options.mean.join(','), std: options.std.join(',') });
    return { count, width: config.width, classes: config.numClasses };
  } finally {
    model.dispose();
  }
}

export function embedCommand(): Command {
  return new Command('embed')
    .description('write class-token features (and logits, if the checkpoint has a head) for every image of a dataset')
    .requiredOption('--checkpoint <file>', 'a .safetensors ViT checkpoint')
    .requiredOption('--data <uri>', 'images: safetensors:<file> holding images (uint8 [N,H,W,3]) and optional labels')
    .requiredOption('--out <file>', 'output .safetensors with features, logits, labels')
    .option('--mean <r,g,b>', 'normalisation mean', parseNumberList('--mean', 3), [...IMAGENET_MEAN])
    .option('--std <r,g,b>', 'normalisation std', parseNumberList('--std', 3), [...IMAGENET_STD])
    .option('--batch <n>', 'images per forward pass', parseInteger('--batch', 1), 32)
    .option('--heads <n>', 'attention heads (default: from metadata, else width/64)', parseInteger('--heads', 1))
    .action(async (options: EmbedOptions, command: Command) => {
      await startBackend(command);
      const started = Date.now();
      const result = await embed(options);
      const seconds = (Date.now() - started) / 1000;
      process.stderr.write(
        `vitpeft: embedded ${result.count} images (${result.width}-d features${result.classes ? `, ${result.classes} logits` : ''}) ` +
          `in ${seconds.toFixed(1)} s (${(result.count / seconds).toFixed(1)} images/s) -> ${options.out}\n`,
      );
    });
}
