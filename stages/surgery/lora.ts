// LoRA on a whole model: wrap the chosen projections of every block (query, key and value are
// slices of timm's fused qkv; proj, fc1, fc2 are whole projections), and merge, unmerge or bake
// the adapters explicitly, for all layers at once or for none.

import * as tf from '@tensorflow/tfjs-core';
import { Linear } from '../../models/vit/linear';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { LoraAdapter, LoraLinear } from './loraLinear';
import { LoraTarget, SurgeryError } from './methodSpec';
import { ProjectionSite, projectionSlots } from './projectionSlots';

export interface LoraOptions {
  readonly rank: number;
  readonly alpha: number;
  readonly targets: readonly LoraTarget[];
  /** Seeds the A matrices (each layer and slice draws from its own seed derived from this). */
  readonly seed?: number;
}

/** Where each target lives, and which columns of that projection's output it adapts. */
interface TargetPlacement {
  readonly site: ProjectionSite;
  /** The slice name in parameter names ('' for a whole projection). */
  readonly slice: string;
  /** Column range as a fraction of the fused qkv output: index of the third, or null for all. */
  readonly third: number | null;
}

const PLACEMENT: Record<LoraTarget, TargetPlacement> = {
  query: { site: 'attn.qkv', slice: 'q', third: 0 },
  key: { site: 'attn.qkv', slice: 'k', third: 1 },
  value: { site: 'attn.qkv', slice: 'v', third: 2 },
  proj: { site: 'attn.proj', slice: '', third: null },
  fc1: { site: 'mlp.fc1', slice: '', third: null },
  fc2: { site: 'mlp.fc2', slice: '', third: null },
};

export interface LoraLayerEntry {
  /** e.g. blocks.3.attn.qkv */
  readonly path: string;
  readonly layer: LoraLinear;
}

/**
 * Wraps the targeted projections of every block of `model` (in place: apply it to a clone).
 * Each target must find a plain Linear in every block; anything else is an error.
 */
export function injectLora(model: VisionTransformer, options: LoraOptions): LoraLayerEntry[] {
  const bySite = new Map<ProjectionSite, LoraTarget[]>();
  for (const target of options.targets) {
    const placement = PLACEMENT[target];
    if (!placement) throw new SurgeryError('lora.targets', `lora: unknown target '${String(target)}'; allowed targets: ${Object.keys(PLACEMENT).join(', ')}`);
    bySite.set(placement.site, [...(bySite.get(placement.site) ?? []), target]);
  }
  const slots = projectionSlots(model).filter((slot) => bySite.has(slot.site));
  // Check every slot before creating anything, so a refusal leaves the model as it was.
  for (const slot of slots) {
    const projection = slot.get();
    if (!(projection instanceof Linear)) {
      throw new SurgeryError('lora.targets', `lora: ${slot.path} is already wrapped (${projection.constructor.name}); LoRA adapts plain Linear projections`);
    }
  }
  const matched = new Set<LoraTarget>(slots.flatMap((slot) => bySite.get(slot.site) ?? []));
  const unmatched = options.targets.filter((target) => !matched.has(target));
  if (unmatched.length > 0) throw new SurgeryError('lora.targets', `lora: target(s) ${unmatched.join(', ')} matched no projection in the model`);

  let serial = 0;
  return slots.map((slot) => {
    const base = slot.get() as Linear;
    const adapters = (bySite.get(slot.site) ?? [])
      .map((target) => PLACEMENT[target])
      .sort((a, b) => (a.third ?? 0) - (b.third ?? 0))
      .map((placement) => {
        const width = placement.third === null ? base.outFeatures : base.outFeatures / 3;
        const offset = placement.third === null ? 0 : placement.third * width;
        const seed = options.seed === undefined ? undefined : options.seed * 100003 + serial++;
        return LoraAdapter.init(placement.slice, offset, base.inFeatures, width, options.rank, seed);
      });
    const layer = new LoraLinear(base, adapters, options.alpha);
    slot.set(layer);
    return { path: slot.path, layer };
  });
}

/** Every LoRA-wrapped projection of the model, in block order. */
export function loraLayers(model: VisionTransformer): LoraLayerEntry[] {
  return projectionSlots(model).flatMap((slot) => {
    const projection = slot.get();
    return projection instanceof LoraLinear ? [{ path: slot.path, layer: projection }] : [];
  });
}

function requireLora(model: VisionTransformer, action: string): LoraLayerEntry[] {
  const layers = loraLayers(model);
  if (layers.length === 0) throw new Error(`cannot ${action}: the model has no LoRA adapters`);
  return layers;
}

/** Merges every adapter into its base weights, or (if any result is not finite) none. */
export function mergeLora(model: VisionTransformer): void {
  const layers = requireLora(model, 'merge');
  const already = layers.filter(({ layer }) => layer.merged).map(({ path }) => path);
  if (already.length > 0) throw new Error(`cannot merge: ${already[0]}${already.length > 1 ? ` and ${already.length - 1} more` : ''} already merged`);
  const weights: tf.Tensor2D[] = [];
  try {
    for (const { path, layer } of layers) weights.push(layer.mergedWeight(path));
  } catch (error) {
    for (const weight of weights) weight.dispose();
    throw error;
  }
  layers.forEach(({ layer }, i) => layer.commitMerge(weights[i]));
}

/** Restores every merged layer's base weights exactly. */
export function unmergeLora(model: VisionTransformer): void {
  const layers = requireLora(model, 'unmerge');
  const notMerged = layers.filter(({ layer }) => !layer.merged).map(({ path }) => path);
  if (notMerged.length > 0) throw new Error(`cannot unmerge: ${notMerged[0]}${notMerged.length > 1 ? ` and ${notMerged.length - 1} more` : ''} not merged`);
  for (const { layer } of layers) layer.unmerge();
}

/**
 * A plain model (Linear projections only) that computes what `model` computes, adapters merged:
 * what saveVit writes as a full checkpoint. `model` is left as it is.
 */
export function mergedCopy(model: VisionTransformer): VisionTransformer {
  const copy = model.clone();
  try {
    for (const slot of projectionSlots(copy)) {
      const projection = slot.get();
      if (projection instanceof LoraLinear) {
        slot.set(projection.toLinear(slot.path));
        projection.dispose();
      }
    }
    return copy;
  } catch (error) {
    copy.dispose();
    throw error;
  }
}
