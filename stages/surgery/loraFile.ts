// LoRA adapters as a small safetensors file of their own, and back onto a model: into a LoRA
// model of the same shape (swapping adapters in place), or onto a plain base model that is
// cloned and never reloaded.
//
// File layout: `<projection path>.lora_A[.q|.k|.v]` [r, in] and `.lora_B[...]` [slice width, r]
// (PyTorch orientation, as in peft's lora_A.weight / lora_B.weight), plus head.weight
// [classes, width] and head.bias when the model has a head. __metadata__ records
// vitpeft.adapter = "lora", vitpeft.lora = {"rank", "alpha", "targets"}, the base
// architecture (vitpeft.architecture) and its added blocks (vitpeft.added_blocks).

import * as tf from '@tensorflow/tfjs-core';
import { METADATA, CheckpointError } from '../../models/checkpoint/vitCheckpoint';
import { SafetensorsFile, WritableTensor, writeSafetensors } from '../../models/checkpoint/safetensors';
import { VitConfig } from '../../models/vit/config';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { SurgeryResult, applySurgery } from './applySurgery';
import { LoraLayerEntry, loraLayers } from './lora';
import { LORA_TARGETS, LoraTarget } from './methodSpec';

export const ADAPTER_METADATA = {
  adapter: 'vitpeft.adapter',
  lora: 'vitpeft.lora',
  architecture: METADATA.architecture,
  addedBlocks: METADATA.addedBlocks,
} as const;

/** What an adapter file says about itself. */
export interface AdapterFileInfo {
  readonly rank: number;
  readonly alpha: number;
  readonly targets: readonly LoraTarget[];
  /** The architecture of the model the adapters were trained on. */
  readonly architecture: Partial<VitConfig>;
  readonly addedBlocks: readonly number[];
  /** Classes of the saved head, or null if the file has none. */
  readonly classes: number | null;
}

const SLICE_TARGET: Record<string, LoraTarget> = { q: 'query', k: 'key', v: 'value' };
const SITE_TARGET: Record<string, LoraTarget> = { 'attn.proj': 'proj', 'mlp.fc1': 'fc1', 'mlp.fc2': 'fc2' };

function targetsOf(layers: readonly LoraLayerEntry[]): LoraTarget[] {
  const found = new Set<LoraTarget>();
  for (const { path, layer } of layers) {
    const site = path.replace(/^blocks\.\d+\./, '');
    for (const adapter of layer.adapters) {
      const target = adapter.slice ? SLICE_TARGET[adapter.slice] : SITE_TARGET[site];
      if (!target) throw new Error(`${path}: adapter '${adapter.slice}' matches no LoRA target`);
      found.add(target);
    }
  }
  return LORA_TARGETS.filter((target) => found.has(target));
}

function loraSettings(layers: readonly LoraLayerEntry[]): { rank: number; alpha: number; targets: LoraTarget[] } {
  const { rank, alpha } = layers[0].layer;
  for (const { path, layer } of layers) {
    if (layer.rank !== rank || layer.alpha !== alpha) {
      throw new Error(`${path} has rank ${layer.rank}, alpha ${layer.alpha} but ${layers[0].path} has rank ${rank}, alpha ${alpha}; one adapter file holds one setting`);
    }
  }
  return { rank, alpha, targets: targetsOf(layers) };
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** The variables an adapter file holds for this model: file name -> variable (model orientation [in, out]). */
function adapterVariables(model: VisionTransformer, layers: readonly LoraLayerEntry[]): Map<string, tf.Variable> {
  const variables = new Map<string, tf.Variable>();
  for (const { path, layer } of layers) {
    for (const adapter of layer.adapters) for (const [name, variable] of adapter.namedParameters()) variables.set(`${path}.${name}`, variable);
  }
  if (model.head) for (const [name, variable] of model.head.namedParameters()) variables.set(`head.${name}`, variable);
  return variables;
}

/** Writes the model's LoRA adapters (and its head) to a safetensors file, atomically. */
export async function saveAdapters(model: VisionTransformer, path: string, extraMetadata: Record<string, string> = {}): Promise<void> {
  const layers = loraLayers(model);
  if (layers.length === 0) throw new Error(`cannot save adapters to ${path}: the model has no LoRA adapters`);
  const settings = loraSettings(layers);
  const tensors: Array<[string, WritableTensor]> = [];
  for (const [name, variable] of adapterVariables(model, layers)) {
    const data = (await variable.data()) as Float32Array;
    if (variable.rank === 2) {
      const [rows, cols] = variable.shape;
      tensors.push([name, { dtype: 'F32', shape: [cols, rows], data: transpose(data, rows, cols) }]);
    } else {
      tensors.push([name, { dtype: 'F32', shape: variable.shape, data }]);
    }
  }
  writeSafetensors(path, tensors, {
    ...extraMetadata,
    format: 'pt',
    [ADAPTER_METADATA.adapter]: 'lora',
    [ADAPTER_METADATA.lora]: JSON.stringify(settings),
    [ADAPTER_METADATA.architecture]: JSON.stringify(model.config),
    [ADAPTER_METADATA.addedBlocks]: JSON.stringify(model.addedBlocks),
  });
}

function parseJson(path: string, file: SafetensorsFile, key: string): unknown {
  const text = file.metadata[key];
  if (text === undefined) throw new CheckpointError(path, `__metadata__.${key}`, 'missing: this is not a vitpeft LoRA adapter file');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new CheckpointError(path, `__metadata__.${key}`, `is not valid JSON (${(error as Error).message})`);
  }
}

function readInfo(path: string, file: SafetensorsFile): AdapterFileInfo {
  if (file.metadata[ADAPTER_METADATA.adapter] !== 'lora') {
    throw new CheckpointError(path, `__metadata__.${ADAPTER_METADATA.adapter}`, `is '${file.metadata[ADAPTER_METADATA.adapter] ?? '(missing)'}', expected 'lora': not a vitpeft LoRA adapter file`);
  }
  const settings = parseJson(path, file, ADAPTER_METADATA.lora) as { rank?: unknown; alpha?: unknown; targets?: unknown };
  const { rank, alpha, targets } = settings ?? {};
  if (!Number.isInteger(rank) || (rank as number) < 1 || typeof alpha !== 'number' || !(alpha > 0) || !Array.isArray(targets) || targets.length === 0 ||
    !targets.every((target) => (LORA_TARGETS as readonly unknown[]).includes(target))) {
    throw new CheckpointError(path, `__metadata__.${ADAPTER_METADATA.lora}`, `must be {"rank": positive integer, "alpha": positive number, "targets": [some of ${LORA_TARGETS.join(', ')}]}`);
  }
  const architecture = parseJson(path, file, ADAPTER_METADATA.architecture);
  if (typeof architecture !== 'object' || architecture === null) throw new CheckpointError(path, `__metadata__.${ADAPTER_METADATA.architecture}`, 'must be a JSON object');
  const addedText = file.metadata[ADAPTER_METADATA.addedBlocks];
  const addedBlocks = addedText === undefined ? [] : (JSON.parse(addedText) as unknown);
  if (!Array.isArray(addedBlocks) || !addedBlocks.every((i) => Number.isInteger(i))) {
    throw new CheckpointError(path, `__metadata__.${ADAPTER_METADATA.addedBlocks}`, 'must be a JSON array of block indices');
  }
  const classes = file.has('head.weight') ? file.info('head.weight').shape[0] : null;
  return { rank: rank as number, alpha, targets: targets as LoraTarget[], architecture: architecture as Partial<VitConfig>, addedBlocks: addedBlocks as number[], classes };
}

/** Reads an adapter file's settings without loading its tensors. */
export function readAdapterInfo(path: string): AdapterFileInfo {
  const file = SafetensorsFile.open(path);
  try {
    return readInfo(path, file);
  } finally {
    file.close();
  }
}

const COMPARED: ReadonlyArray<keyof VitConfig> = ['width', 'depth', 'heads', 'mlpHidden', 'patchSize', 'inChannels'];

/**
 * Loads an adapter file into a LoRA model with the same rank, alpha, targets and architecture,
 * replacing its adapter (and head) values in place. Everything is checked before anything is
 * assigned. Merged layers are refused: unmerge first.
 */
export function loadAdapters(model: VisionTransformer, path: string): AdapterFileInfo {
  const file = SafetensorsFile.open(path);
  try {
    const info = readInfo(path, file);
    const layers = loraLayers(model);
    if (layers.length === 0) throw new CheckpointError(path, undefined, 'the model has no LoRA adapters to load into; use attachAdapters on a plain base model');
    const merged = layers.find(({ layer }) => layer.merged);
    if (merged) throw new CheckpointError(path, undefined, `${merged.path} is merged; unmerge before loading other adapters`);
    const settings = loraSettings(layers);
    const mismatch = (what: string, theirs: unknown, ours: unknown) =>
      new CheckpointError(path, undefined, `the adapters have ${what} ${JSON.stringify(theirs)} but the model's have ${JSON.stringify(ours)}`);
    if (info.rank !== settings.rank) throw mismatch('rank', info.rank, settings.rank);
    if (info.alpha !== settings.alpha) throw mismatch('alpha', info.alpha, settings.alpha);
    if (info.targets.join() !== settings.targets.join()) throw mismatch('targets', info.targets, settings.targets);
    const config = model.config;
    for (const key of COMPARED) {
      if (info.architecture[key] !== undefined && info.architecture[key] !== config[key]) {
        throw new CheckpointError(path, `__metadata__.${ADAPTER_METADATA.architecture}`, `was made for ${key} ${info.architecture[key]}, but the model has ${key} ${config[key]}`);
      }
    }
    if (info.addedBlocks.join() !== model.addedBlocks.join()) {
      throw new CheckpointError(path, `__metadata__.${ADAPTER_METADATA.addedBlocks}`, `records added blocks [${info.addedBlocks}] but the model has [${model.addedBlocks}]`);
    }

    const variables = adapterVariables(model, layers);
    if (info.classes === null) for (const name of [...variables.keys()]) if (name.startsWith('head.')) variables.delete(name);
    for (const name of file.names) {
      if (!variables.has(name)) {
        throw new CheckpointError(path, name, name.startsWith('head.') ? 'the model has no head to load it into' : 'matches no adapter of the model');
      }
    }
    const values: Array<[tf.Variable, Float32Array]> = [];
    for (const [name, variable] of variables) {
      if (!file.has(name)) throw new CheckpointError(path, name, 'missing from the adapter file');
      const expected: number[] = variable.rank === 2 ? [variable.shape[1] as number, variable.shape[0] as number] : variable.shape;
      const shape = file.info(name).shape;
      if (shape.join() !== expected.join()) throw new CheckpointError(path, name, `has shape [${shape}], the model expects [${expected}]`);
      const data = file.readFloat32(name);
      values.push([variable, variable.rank === 2 ? transpose(data, expected[0], expected[1]) : data]);
    }
    tf.tidy(() => {
      for (const [variable, data] of values) variable.assign(tf.tensor(data, variable.shape));
    });
    return info;
  } finally {
    file.close();
  }
}

/**
 * Puts saved adapters on a base model without reloading it: clones the base, injects adapters of
 * the file's rank, alpha and targets, and loads their values and head. The base stays untouched.
 * `classes` is needed only when the file holds no head.
 */
export function attachAdapters(base: VisionTransformer, path: string, options: { classes?: number } = {}): SurgeryResult {
  const info = readAdapterInfo(path);
  const classes = info.classes ?? options.classes;
  if (classes === undefined) throw new CheckpointError(path, 'head.weight', 'missing, and no number of classes was given for a new head');
  const result = applySurgery(base, { method: 'lora', rank: info.rank, alpha: info.alpha, targets: info.targets }, { classes, headInit: 'zero' });
  try {
    loadAdapters(result.model, path);
    return result;
  } catch (error) {
    result.model.dispose();
    throw error;
  }
}
