// Loading and saving a VisionTransformer as safetensors. Loading reads either layout, infers the
// architecture from the tensors, and turns PyTorch-oriented weights into the model's order;
// saving writes timm names in PyTorch orientation with the architecture in __metadata__, so the
// file loads into timm as it is.

import * as tf from '@tensorflow/tfjs-core';
import { Block } from '../vit/block';
import { Attention } from '../vit/attention';
import { VitConfig, validateConfig } from '../vit/config';
import { LayerNorm } from '../vit/layerNorm';
import { Linear } from '../vit/linear';
import { Mlp } from '../vit/mlp';
import { parameter } from '../vit/module';
import { PatchEmbed } from '../vit/patchEmbed';
import { ResampleOptions, TIMM_RESAMPLE, gridResampleMatrix } from '../vit/posEmbed';
import { VisionTransformer } from '../vit/visionTransformer';
import { LayoutName, RawTensor, StateDict, Translation, planTranslation, translateToTimm } from './layouts';
import { SafetensorsFile, WritableTensor, elementCount, writeSafetensors } from './safetensors';

export const DEFAULT_EPS: Record<LayoutName, number> = { timm: 1e-6, huggingface: 1e-12 };

/** Problems with a checkpoint's content (as opposed to its byte format), naming file and key. */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    detail: string,
  ) {
    super(`${file}: ${key === undefined ? '' : `'${key}': `}${detail}`);
    this.name = 'CheckpointError';
  }
}

export interface LoadOptions {
  /** Attention heads; default: from __metadata__, else width / 64. */
  readonly heads?: number;
  /** LayerNorm eps; default: from __metadata__, else the layout's (timm 1e-6, Hugging Face 1e-12). */
  readonly layerNormEps?: number;
  /** Resample position embeddings at load time for this input size. */
  readonly imageSize?: number;
  readonly posEmbedResample?: ResampleOptions;
  /** Ignore tensors that match no known name instead of refusing the file. */
  readonly allowUnknownKeys?: boolean;
}

export interface CheckpointSummary {
  readonly file: string;
  readonly layout: LayoutName;
  readonly strippedPrefix: string;
  readonly config: VitConfig;
  readonly parameterCount: number;
  readonly addedBlocks: readonly number[];
  readonly ignored: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** Metadata keys the project writes. */
export const METADATA = {
  format: 'format',
  architecture: 'vitpeft.architecture',
  addedBlocks: 'vitpeft.added_blocks',
} as const;

function parseMetadataArchitecture(file: string, metadata: Readonly<Record<string, string>>): Partial<VitConfig> {
  const text = metadata[METADATA.architecture];
  if (text === undefined) return {};
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) throw new Error('not an object');
    return value as Partial<VitConfig>;
  } catch (error) {
    throw new CheckpointError(file, `__metadata__.${METADATA.architecture}`, `is not a JSON object (${(error as Error).message})`);
  }
}

function shapeOf(file: string, state: StateDict, name: string): readonly number[] {
  const tensor = state.get(name);
  if (!tensor) throw new CheckpointError(file, name, 'missing from the checkpoint');
  return tensor.shape;
}

/** Infers the architecture from tensor shapes (heads and eps from metadata, options or defaults). */
export function inferArchitecture(
  file: string,
  state: StateDict,
  layout: LayoutName,
  metadata: Readonly<Record<string, string>>,
  options: Pick<LoadOptions, 'heads' | 'layerNormEps'> = {},
): VitConfig {
  const declared = parseMetadataArchitecture(file, metadata);
  const cls = shapeOf(file, state, 'cls_token');
  if (cls.length !== 3 || cls[0] !== 1 || cls[1] !== 1) throw new CheckpointError(file, 'cls_token', `has shape [${cls}], expected [1, 1, width]`);
  const width = cls[2];
  const patch = shapeOf(file, state, 'patch_embed.proj.weight');
  if (patch.length !== 4 || patch[0] !== width || patch[2] !== patch[3]) {
    throw new CheckpointError(file, 'patch_embed.proj.weight', `has shape [${patch}], expected [${width}, channels, patch, patch]`);
  }
  const pos = shapeOf(file, state, 'pos_embed');
  const grid = Math.round(Math.sqrt(pos[1] - 1));
  if (pos.length !== 3 || pos[0] !== 1 || pos[2] !== width || grid * grid !== pos[1] - 1) {
    throw new CheckpointError(file, 'pos_embed', `has shape [${pos}], expected [1, 1 + grid*grid, ${width}] (a class token and a square grid)`);
  }
  let depth = 0;
  while (state.has(`blocks.${depth}.norm1.weight`)) depth++;
  for (const name of state.keys()) {
    const match = /^blocks\.(\d+)\./.exec(name);
    if (match && Number(match[1]) >= depth) {
      throw new CheckpointError(file, name, `belongs to block ${match[1]} but blocks.${depth} is missing (blocks must be numbered 0..depth-1)`);
    }
  }
  if (depth === 0) throw new CheckpointError(file, 'blocks.0.norm1.weight', 'missing: the checkpoint has no transformer blocks');
  const fc1 = shapeOf(file, state, 'blocks.0.mlp.fc1.weight');
  const head = state.get('head.weight');
  const heads = options.heads ?? declared.heads ?? width / 64;
  if (!Number.isInteger(heads) || heads <= 0 || width % heads !== 0) {
    throw new CheckpointError(file, undefined, `cannot use ${heads} attention heads for width ${width}; pass the number of heads (--heads) or record it in __metadata__`);
  }
  return validateConfig({
    imageSize: grid * patch[2],
    patchSize: patch[2],
    inChannels: patch[1],
    width,
    depth,
    heads,
    mlpHidden: fc1[0],
    numClasses: head ? head.shape[0] : 0,
    layerNormEps: options.layerNormEps ?? declared.layerNormEps ?? DEFAULT_EPS[layout],
  });
}

function expectShape(file: string, state: StateDict, name: string, shape: readonly number[]): RawTensor {
  const tensor = state.get(name);
  if (!tensor) throw new CheckpointError(file, name, 'missing from the checkpoint');
  if (tensor.shape.join() !== shape.join()) throw new CheckpointError(file, name, `has shape [${tensor.shape}], expected [${shape}]`);
  return tensor;
}

/** [out, in] (PyTorch) to [in, out]. */
function transposeMatrix(tensor: RawTensor): Float32Array {
  const [rows, cols] = tensor.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = tensor.data[r * cols + c];
  return out;
}

/** Conv weight [out, channels, kh, kw] to patch-matrix rows [(kh, kw, channel), out]. */
function convToPatchMatrix(tensor: RawTensor): Float32Array {
  const [out, channels, kh, kw] = tensor.shape;
  const result = new Float32Array(out * channels * kh * kw);
  for (let o = 0; o < out; o++)
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) result[((y * kw + x) * channels + c) * out + o] = tensor.data[((o * channels + c) * kh + y) * kw + x];
  return result;
}

function patchMatrixToConv(data: Float32Array, out: number, channels: number, kernel: number): Float32Array {
  const result = new Float32Array(data.length);
  for (let o = 0; o < out; o++)
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < kernel; y++)
        for (let x = 0; x < kernel; x++) result[((o * channels + c) * kernel + y) * kernel + x] = data[((y * kernel + x) * channels + c) * out + o];
  return result;
}

/** Builds the model from a timm-named, PyTorch-oriented state dict. */
export function modelFromStateDict(
  file: string,
  state: StateDict,
  config: VitConfig,
  options: { addedBlocks?: readonly number[]; imageSize?: number; posEmbedResample?: ResampleOptions } = {},
): VisionTransformer {
  const { width, mlpHidden, patchSize, inChannels } = config;
  const grid = config.imageSize / patchSize;
  const created: tf.Variable[] = [];
  const variable = <R extends tf.Rank>(data: Float32Array, shape: number[]): tf.Variable<R> => {
    const v = parameter(tf.tensor(data, shape as tf.ShapeMap[R]), true);
    created.push(v);
    return v;
  };
  const linear = (name: string, inFeatures: number, outFeatures: number): Linear =>
    new Linear(
      variable(transposeMatrix(expectShape(file, state, `${name}.weight`, [outFeatures, inFeatures])), [inFeatures, outFeatures]),
      variable(expectShape(file, state, `${name}.bias`, [outFeatures]).data, [outFeatures]),
    );
  const layerNorm = (name: string): LayerNorm =>
    new LayerNorm(
      variable(expectShape(file, state, `${name}.weight`, [width]).data, [width]),
      variable(expectShape(file, state, `${name}.bias`, [width]).data, [width]),
      config.layerNormEps,
    );
  try {
    const added = new Set(options.addedBlocks ?? []);
    const blocks = Array.from({ length: config.depth }, (_, i) => {
      const prefix = `blocks.${i}`;
      return new Block(
        layerNorm(`${prefix}.norm1`),
        new Attention(linear(`${prefix}.attn.qkv`, width, 3 * width), linear(`${prefix}.attn.proj`, width, width), config.heads),
        layerNorm(`${prefix}.norm2`),
        new Mlp(linear(`${prefix}.mlp.fc1`, width, mlpHidden), linear(`${prefix}.mlp.fc2`, mlpHidden, width)),
        added.has(i),
      );
    });
    const patchWeight = expectShape(file, state, 'patch_embed.proj.weight', [width, inChannels, patchSize, patchSize]);
    const patchEmbed = new PatchEmbed(
      variable(convToPatchMatrix(patchWeight), [patchSize * patchSize * inChannels, width]),
      variable(expectShape(file, state, 'patch_embed.proj.bias', [width]).data, [width]),
      patchSize,
      inChannels,
    );
    let posData = expectShape(file, state, 'pos_embed', [1, 1 + grid * grid, width]).data;
    let imageSize = config.imageSize;
    const resample = options.posEmbedResample ?? TIMM_RESAMPLE;
    if (options.imageSize !== undefined && options.imageSize !== config.imageSize) {
      if (options.imageSize % patchSize !== 0) throw new CheckpointError(file, 'pos_embed', `cannot resample for ${options.imageSize}px images: not a multiple of the patch size ${patchSize}`);
      const newGrid = options.imageSize / patchSize;
      posData = resamplePositionData(posData, grid, newGrid, width, resample);
      imageSize = options.imageSize;
    }
    const newGrid = imageSize / patchSize;
    const head = config.numClasses > 0 ? linear('head', width, config.numClasses) : null;
    return new VisionTransformer(
      { ...config, imageSize },
      {
        patchEmbed,
        clsToken: variable(expectShape(file, state, 'cls_token', [1, 1, width]).data, [1, 1, width]),
        posEmbed: variable(posData, [1, 1 + newGrid * newGrid, width]),
        blocks,
        norm: layerNorm('norm'),
        head,
      },
      { posEmbedResample: resample },
    );
  } catch (error) {
    for (const v of created) v.dispose();
    throw error;
  }
}

/** Resamples [1, 1 + g*g, width] position data to a new grid with the class position kept. */
export function resamplePositionData(data: Float32Array, grid: number, newGrid: number, width: number, options: ResampleOptions): Float32Array {
  const matrix = gridResampleMatrix([grid, grid], [newGrid, newGrid], options);
  const oldCount = grid * grid;
  const newCount = newGrid * newGrid;
  const out = new Float32Array((1 + newCount) * width);
  out.set(data.subarray(0, width));
  for (let r = 0; r < newCount; r++) {
    for (let c = 0; c < oldCount; c++) {
      const weight = matrix[r * oldCount + c];
      if (weight === 0) continue;
      const source = (1 + c) * width;
      const target = (1 + r) * width;
      for (let k = 0; k < width; k++) out[target + k] += weight * data[source + k];
    }
  }
  return out;
}

/** Opens a file, translates its layout and infers its architecture; reads tensor data once. */
export function readCheckpoint(
  path: string,
  options: LoadOptions = {},
): { state: StateDict; config: VitConfig; translation: Translation; metadata: Readonly<Record<string, string>>; addedBlocks: number[] } {
  const file = SafetensorsFile.open(path);
  try {
    let translation: Translation;
    try {
      translation = planTranslation(file.names);
    } catch (error) {
      throw new CheckpointError(path, undefined, (error as Error).message);
    }
    if (translation.unknown.length > 0 && !options.allowUnknownKeys) {
      const shown = translation.unknown.slice(0, 3).map((key) => `'${key}'`).join(', ');
      throw new CheckpointError(
        path,
        undefined,
        `${translation.unknown.length} tensor(s) match no ${translation.layout} ViT parameter (${shown}${translation.unknown.length > 3 ? ', ...' : ''}); pass --allow-unknown-keys to ignore them`,
      );
    }
    let state: StateDict;
    try {
      state = translateToTimm(translation, (key) => ({ shape: file.info(key).shape, data: file.readFloat32(key) }));
    } catch (error) {
      if (error instanceof Error && error.name === 'SafetensorsError') throw error;
      throw new CheckpointError(path, undefined, (error as Error).message);
    }
    const config = inferArchitecture(path, state, translation.layout, file.metadata, options);
    const addedText = file.metadata[METADATA.addedBlocks];
    let addedBlocks: number[] = [];
    if (addedText !== undefined) {
      const parsed = JSON.parse(addedText) as unknown;
      if (!Array.isArray(parsed) || !parsed.every((i) => Number.isInteger(i) && i >= 0 && i < config.depth)) {
        throw new CheckpointError(path, `__metadata__.${METADATA.addedBlocks}`, `must be a JSON array of block indices below ${config.depth}`);
      }
      addedBlocks = parsed as number[];
    }
    return { state, config, translation, metadata: file.metadata, addedBlocks };
  } finally {
    file.close();
  }
}

export function loadVit(path: string, options: LoadOptions = {}): { model: VisionTransformer; summary: CheckpointSummary } {
  const { state, config, translation, metadata, addedBlocks } = readCheckpoint(path, options);
  const model = modelFromStateDict(path, state, config, { addedBlocks, imageSize: options.imageSize, posEmbedResample: options.posEmbedResample });
  return { model, summary: summarize(path, translation, model.config, model.parameterCount(), addedBlocks, metadata) };
}

export function summarize(
  file: string,
  translation: Translation,
  config: VitConfig,
  parameterCount: number,
  addedBlocks: readonly number[],
  metadata: Readonly<Record<string, string>>,
): CheckpointSummary {
  return { file, layout: translation.layout, strippedPrefix: translation.strippedPrefix, config, parameterCount, addedBlocks, ignored: translation.ignored, metadata };
}

/** Describes a checkpoint without building a model. */
export function inspectCheckpoint(path: string, options: LoadOptions = {}): CheckpointSummary {
  const { state, config, translation, metadata, addedBlocks } = readCheckpoint(path, options);
  let count = 0;
  for (const tensor of state.values()) count += elementCount(tensor.shape);
  return summarize(path, translation, config, count, addedBlocks, metadata);
}

/**
 * A projection wrapped by an adapter names extra parameters (e.g. LoRA's lora_A/lora_B) that are
 * not plain Linear weights and that timm would not load: such a model is saved as a merged copy,
 * with its adapters in a file of their own.
 */
function refuseWrappedProjections(model: VisionTransformer): void {
  model.blocks.forEach((block, index) => {
    const projections = { 'attn.qkv': block.attn.qkv, 'attn.proj': block.attn.proj, 'mlp.fc1': block.mlp.fc1, 'mlp.fc2': block.mlp.fc2 };
    for (const [site, projection] of Object.entries(projections)) {
      if (!(projection instanceof Linear)) {
        throw new Error(
          `cannot write blocks.${index}.${site} as a plain checkpoint: it is wrapped by an adapter (${projection.constructor.name}); ` +
            'save a merged copy (mergedCopy in stages/surgery) and the adapters separately (saveAdapters)',
        );
      }
    }
  });
}

/** The model's parameters as timm names in PyTorch orientation. */
export async function modelToStateDict(model: VisionTransformer): Promise<StateDict> {
  refuseWrappedProjections(model);
  const config = model.config;
  const state: StateDict = new Map();
  for (const [name, variable] of model.namedParameters()) {
    const data = (await variable.data()) as Float32Array;
    if (name === 'patch_embed.proj.weight') {
      state.set(name, { shape: [config.width, config.inChannels, config.patchSize, config.patchSize], data: patchMatrixToConv(data, config.width, config.inChannels, config.patchSize) });
    } else if (variable.rank === 2 && name !== 'cls_token') {
      const [inFeatures, outFeatures] = variable.shape;
      state.set(name, { shape: [outFeatures, inFeatures], data: transposeMatrix({ shape: [inFeatures, outFeatures], data }) });
    } else {
      state.set(name, { shape: variable.shape, data });
    }
  }
  return state;
}

export function architectureMetadata(model: VisionTransformer): Record<string, string> {
  return {
    [METADATA.format]: 'pt',
    [METADATA.architecture]: JSON.stringify(model.config),
    [METADATA.addedBlocks]: JSON.stringify(model.addedBlocks),
  };
}

/** Writes the model in timm layout (loadable by timm), atomically. */
export async function saveVit(model: VisionTransformer, path: string, extraMetadata: Record<string, string> = {}): Promise<void> {
  const state = await modelToStateDict(model);
  const tensors: Array<[string, WritableTensor]> = [...state].map(([name, tensor]) => [name, { dtype: 'F32', shape: tensor.shape, data: tensor.data }]);
  writeSafetensors(path, tensors, { ...architectureMetadata(model), ...extraMetadata });
}
