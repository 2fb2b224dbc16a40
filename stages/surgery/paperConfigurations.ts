// The paper's ten configurations (Bafghi et al. 2024, table 1) with the trainable-parameter
// figures it reports, and their trainable counts here, found by applying each method to a model.
// The paper's LoRA figures exceed the true counts by one head: its LoRA library kept a trainable
// copy of the classifier beside the original, and both were counted.

import { presetConfig } from '../../models/vit/config';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { SurgeryResult, applySurgery } from './applySurgery';
import { MethodSpec, SurgeryError } from './methodSpec';
import { countParameters } from './trainability';

export interface PaperConfiguration {
  readonly name: string;
  readonly spec: MethodSpec;
  /** The figure as the paper prints it (for ViT-B/16 with 100 classes). */
  readonly reported: string;
}

export const PAPER_CONFIGURATIONS: readonly PaperConfiguration[] = [
  { name: 'full', spec: { method: 'full' }, reported: '85.9 M' },
  { name: 'top3', spec: { method: 'topk', k: 3 }, reported: '21.3 M' },
  { name: 'linear', spec: { method: 'linear' }, reported: '76.9 K' },
  { name: 'lora-r4', spec: { method: 'lora', rank: 4 }, reported: '301 K' },
  { name: 'lora-r8', spec: { method: 'lora', rank: 8 }, reported: '448 K' },
  { name: 'lora-r16', spec: { method: 'lora', rank: 16 }, reported: '743 K' },
  { name: 'block-p1', spec: { method: 'block', p: 1 }, reported: '7.2 M' },
  { name: 'block-p2', spec: { method: 'block', p: 2 }, reported: '14.3 M' },
  { name: 'block-p3', spec: { method: 'block', p: 3 }, reported: '21.3 M' },
  { name: 'block-p4', spec: { method: 'block', p: 4 }, reported: '28.4 M' },
];

/** The paper's setting: DINO ViT-B/16 at 224 px, fine-tuned on CIFAR-100. */
export const PAPER_ARCHITECTURE = 'vit-b16';
export const PAPER_CLASSES = 100;

/** '85.9 M' -> 85,900,000 with resolution 100,000 (one unit in the last printed digit). */
export function parseReported(text: string): { value: number; resolution: number } {
  const match = /^(\d+)(?:\.(\d+))? ?([KM])$/.exec(text);
  if (!match) throw new Error(`cannot read the reported figure '${text}' (expected e.g. 85.9 M or 301 K)`);
  const unit = match[3] === 'K' ? 1e3 : 1e6;
  const decimals = match[2]?.length ?? 0;
  const resolution = unit / 10 ** decimals;
  const digits = Number(`${match[1]}${match[2] ?? ''}`);
  return { value: digits * resolution, resolution };
}

/** True when the count rounds, or truncates, to the reported figure at the paper's precision. */
export function agreesWithReported(count: number, reported: string): boolean {
  const { value, resolution } = parseReported(reported);
  return Math.round(count / resolution) * resolution === value || Math.floor(count / resolution) * resolution === value;
}

/** Whether a base model and class count are the paper's (so its figures apply). */
export function isPaperSetting(base: VisionTransformer, classes: number): boolean {
  const reference = presetConfig(PAPER_ARCHITECTURE);
  const config = base.config;
  const keys = ['imageSize', 'patchSize', 'inChannels', 'width', 'depth', 'heads', 'mlpHidden'] as const;
  return classes === PAPER_CLASSES && base.addedBlocks.length === 0 && keys.every((key) => config[key] === reference[key]);
}

export interface ParameterCountRow {
  readonly name: string;
  readonly method: string;
  /** Trainable scalars after applying the method to the model; null where the method does not fit the model. */
  readonly trainable: number | null;
  readonly firstTrainableBlock: number | null;
  readonly description: string;
  /** Why the method does not fit the model (e.g. p does not divide its depth); absent when it does. */
  readonly error?: string;
  /** The paper's figure, when the model and classes are the paper's; else null. */
  readonly reported: string | null;
  /** Whether `trainable` agrees with `reported` at the paper's precision (null without a figure). */
  readonly agrees: boolean | null;
  /** For LoRA: the count with the head counted a second time, as the paper did. */
  readonly headCountedTwice?: { readonly head: number; readonly total: number; readonly agrees: boolean | null };
}

/** Applies each configuration to `base` (which stays untouched) and counts what trains. */
export function countConfigurations(
  base: VisionTransformer,
  classes: number,
  configurations: readonly PaperConfiguration[] = PAPER_CONFIGURATIONS,
  options: { seed?: number } = {},
): ParameterCountRow[] {
  const paper = isPaperSetting(base, classes);
  return configurations.map((configuration) => {
    const reported = paper ? configuration.reported : null;
    let result: SurgeryResult;
    try {
      result = applySurgery(base, configuration.spec, { classes, seed: options.seed });
    } catch (error) {
      if (!(error instanceof SurgeryError)) throw error;
      const method = configuration.name;
      return { name: configuration.name, method, trainable: null, firstTrainableBlock: null, description: '', error: error.message, reported, agrees: null };
    }
    try {
      const row: ParameterCountRow = {
        name: configuration.name,
        method: result.method,
        trainable: result.trainableCount,
        firstTrainableBlock: result.firstTrainableBlock,
        description: result.description,
        reported,
        agrees: reported === null ? null : agreesWithReported(result.trainableCount, reported),
      };
      if (result.spec.method !== 'lora' || !result.model.head) return row;
      const head = countParameters(result.model.head.namedParameters().map(([, variable]) => variable));
      const total = result.trainableCount + head;
      return { ...row, headCountedTwice: { head, total, agrees: reported === null ? null : agreesWithReported(total, reported) } };
    } finally {
      result.model.dispose();
    }
  });
}
