// `vitpeft embed`: features (class token after the final norm) and, when the checkpoint has a
// head, logits for every image of a dataset, written as safetensors — also how features are cached.

import { Command } from 'commander';
import { concatMap, lastValueFrom } from 'rxjs';
import { WritableTensor, writeSafetensors } from '../../models/checkpoint/safetensors';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { VitConfig } from '../../models/vit/config';
import { batches } from '../../stages/dataset/batches';
import { DATA_URI_SYNTAX, DataUriError, openDataUri } from '../../stages/dataset/dataUri';
import { IMAGENET_MEAN, IMAGENET_STD } from '../../stages/dataset/normalize';
import { DatasetSource } from '../../stages/dataset/source';
import { Transform, namedTransform } from '../../stages/dataset/transforms';
import { UsageError } from '../errors';
import { startBackend } from '../startBackend';
import { parseInteger, parseNumberList } from '../options';

export { readImageFile } from '../../stages/dataset/safetensorsSource';

export const EMBED_GEOMETRIES = ['auto', 'native', 'resize', 'dino-knn'] as const;
export type EmbedGeometry = (typeof EMBED_GEOMETRIES)[number];

export interface EmbedOptions {
  checkpoint: string;
  data: string;
  out: string;
  mean: number[];
  std: number[];
  batch: number;
  heads?: number;
  /** Output image size for resize and dino-knn (default: the model's image size). */
  size?: number;
  /** auto (default): native when every image fits the model, else resize. */
  transform?: EmbedGeometry;
  /** Folder that relative paths in --data are relative to (default: the working directory). */
  baseDir?: string;
  /** Worker threads for the image transform (default 0: the main thread). */
  workers?: number;
  /** Where notes go (default stderr). */
  log?: (message: string) => void;
}

/** The transform embed applies: the chosen geometry, then normalisation with --mean/--std. */
export function embedTransform(source: DatasetSource, config: VitConfig, options: Pick<EmbedOptions, 'transform' | 'size' | 'mean' | 'std' | 'log'>): Transform {
  let geometry = options.transform ?? 'auto';
  const size = options.size ?? config.imageSize;
  if (geometry === 'auto') {
    const shape = source.imageShape;
    const fits = shape !== undefined && shape[0] % config.patchSize === 0 && shape[1] % config.patchSize === 0;
    geometry = options.size === undefined && fits ? 'native' : 'resize';
    if (geometry === 'resize' && options.size === undefined) {
      options.log?.(
        `${shape ? `images are ${shape[0]}x${shape[1]}, not multiples of the patch size ${config.patchSize}` : 'images vary in size'}; ` +
          `resizing them to ${size}x${size} (bilinear); choose with --size or --transform`,
      );
    }
  }
  const named = geometry === 'native' ? 'native' : geometry === 'resize' ? 'paper-test' : 'dino-knn';
  const spec = namedTransform(named, { size });
  return new Transform({ name: geometry, steps: spec.steps, mean: options.mean, std: options.std });
}

export async function embed(options: EmbedOptions): Promise<{ count: number; width: number; classes: number; skipped: number }> {
  let source: DatasetSource;
  try {
    source = await openDataUri(options.data, { baseDir: options.baseDir });
  } catch (error) {
    if (error instanceof DataUriError) throw new UsageError(`--data: ${error.message}`);
    throw error;
  }
  const { model } = loadVit(options.checkpoint, { heads: options.heads });
  try {
    const config = model.config;
    if (config.inChannels !== 3) throw new UsageError(`${options.checkpoint}: the model takes ${config.inChannels} channels; data sources give RGB images`);
    const transform = embedTransform(source, config, { ...options, log: options.log ?? ((message) => process.stderr.write(`vitpeft: ${message}
`)) });
    const capacity = source.size;
    const features = new Float32Array(capacity * config.width);
    const logits = config.numClasses > 0 ? new Float32Array(capacity * config.numClasses) : undefined;
    const labels = new BigInt64Array(capacity);
    const indices = new BigInt64Array(capacity);
    let count = 0;
    const stream = batches(source, { batchSize: options.batch, shuffle: false, epochs: 1, transform, prefetch: 2, workers: options.workers }).pipe(
      concatMap(async (batch) => {
        try {
          const [size, height, width] = batch.images.shape;
          if (height % config.patchSize !== 0 || width % config.patchSize !== 0) {
            throw new UsageError(`${source.description}: images are ${height}x${width} after the transform, not a multiple of the model's patch size ${config.patchSize}; use --size`);
          }
          const batchFeatures = model.embedCls(batch.images);
          try {
            features.set(await batchFeatures.data(), count * config.width);
            if (logits) {
              const batchLogits = model.forwardHead(batchFeatures);
              logits.set(await batchLogits.data(), count * config.numClasses);
              batchLogits.dispose();
            }
          } finally {
            batchFeatures.dispose();
          }
          const batchLabels = await batch.labels.data();
          for (let i = 0; i < size; i++) {
            labels[count + i] = BigInt(batchLabels[i]);
            indices[count + i] = BigInt(batch.indices[i]);
          }
          count += size;
        } finally {
          batch.dispose();
        }
      }),
    );
    await lastValueFrom(stream, { defaultValue: undefined });
    const tensors: Array<[string, WritableTensor]> = [['features', { dtype: 'F32', shape: [count, config.width], data: features.subarray(0, count * config.width) }]];
    if (logits) tensors.push(['logits', { dtype: 'F32', shape: [count, config.numClasses], data: logits.subarray(0, count * config.numClasses) }]);
    if (source.numClasses > 0) tensors.push(['labels', { dtype: 'I64', shape: [count], data: labels.subarray(0, count) }]);
    // Only when unreadable images were skipped do rows stop matching source positions.
    if (count < capacity) tensors.push(['indices', { dtype: 'I64', shape: [count], data: indices.subarray(0, count) }]);
    writeSafetensors(options.out, tensors, {
      checkpoint: options.checkpoint,
      data: options.data,
      source: source.description,
      transform: transform.description,
      mean: options.mean.join(','),
      std: options.std.join(','),
    });
    return { count, width: config.width, classes: config.numClasses, skipped: capacity - count };
  } finally {
    model.dispose();
  }
}

export function embedCommand(): Command {
  return new Command('embed')
    .description('write class-token features (and logits, if the checkpoint has a head) for every image of a dataset')
    .requiredOption('--checkpoint <file>', 'a .safetensors ViT checkpoint')
    .requiredOption('--data <uri>', `images: ${DATA_URI_SYNTAX}; options ?classes=0-4&remap=false&perClass=N (safetensors: images uint8 [N,H,W,C], optional labels)`)
    .requiredOption('--out <file>', 'output .safetensors with features, logits, labels')
    .option('--mean <r,g,b>', 'normalisation mean', parseNumberList('--mean', 3), [...IMAGENET_MEAN])
    .option('--std <r,g,b>', 'normalisation std', parseNumberList('--std', 3), [...IMAGENET_STD])
    .option('--batch <n>', 'images per forward pass', parseInteger('--batch', 1), 32)
    .option('--heads <n>', 'attention heads (default: from metadata, else width/64)', parseInteger('--heads', 1))
    .option('--size <n>', "image size for --transform resize and dino-knn (default: the model's)", parseInteger('--size', 1, 16384))
    .option('--transform <geometry>', 'auto (native size when images fit the model, else resize) | native | resize (bilinear to size x size) | dino-knn (bicubic shorter side size*256/224, center crop size); normalisation is always --mean/--std', (value: string) => {
      if (!(EMBED_GEOMETRIES as readonly string[]).includes(value)) throw new UsageError(`--transform: expected one of ${EMBED_GEOMETRIES.join(', ')}, got '${value}'`);
      return value;
    }, 'auto')
    .option('--workers <n>', 'worker threads for the image transform (0: the main thread; the pixels are the same)', parseInteger('--workers', 0, 64), 0)
    .action(async (options: EmbedOptions, command: Command) => {
      await startBackend(command);
      const started = Date.now();
      const result = await embed(options);
      const seconds = (Date.now() - started) / 1000;
      process.stderr.write(
        `vitpeft: embedded ${result.count} images (${result.width}-d features${result.classes ? `, ${result.classes} logits` : ''}${result.skipped ? `, ${result.skipped} unreadable skipped` : ''}) ` +
          `in ${seconds.toFixed(1)} s (${(result.count / seconds).toFixed(1)} images/s) -> ${options.out}\n`,
      );
    });
}
