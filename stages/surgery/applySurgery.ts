// Model surgery: a pure function from a pretrained model and a method to a new model with a new
// head, plus the list of variables that train. The base model is cloned, never changed, so one
// loaded base serves every method of a pipeline in turn.

import * as tf from '@tensorflow/tfjs-core';
import { Module } from '../../models/vit/module';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { describeExpansion, expandBlocks, planExpansion } from './blockExpansion';
import { HeadInit, describeHeadInit, newHead } from './head';
import { injectLora } from './lora';
import { MethodSpec, ResolvedSpec, SurgeryError, methodLabel, resolveSpec } from './methodSpec';
import { assignTrainability } from './trainability';

export interface SurgeryOptions {
  /** Classes of the new head. */
  readonly classes: number;
  /** Seeds the new head and the LoRA A matrices; unseeded when absent. */
  readonly seed?: number;
  /** The new head's init (default 'random': truncated normal, std 0.02, zero bias). */
  readonly headInit?: HeadInit;
}

export interface SurgeryResult {
  /** A new model; the caller disposes it. The base is untouched and still usable. */
  readonly model: VisionTransformer;
  /** Exactly the variables to hand the optimizer, in the model's parameter order. */
  readonly trainable: tf.Variable[];
  /** Their names (blocks.3.attn.qkv.lora_A.q, head.weight, ...). */
  readonly trainableNames: string[];
  /** Scalar parameters that train. */
  readonly trainableCount: number;
  /** Short label: full, top3, linear, lora-r8, block-p4, ... */
  readonly method: string;
  readonly spec: ResolvedSpec;
  /** Where adapters or new blocks went, and what trains. */
  readonly description: string;
  /** First block holding a trainable variable (0 if embeddings train, depth if only the head trains): blocks before it can run outside the gradient tape. */
  readonly firstTrainableBlock: number;
  /** Indices of the model's added blocks: the new ones for block expansion (kept from the base, if it had any, otherwise). */
  readonly addedBlocks: number[];
  /** Paths of the projections LoRA wraps (empty for other methods). */
  readonly adaptedProjections: string[];
}

function validateClasses(classes: number): void {
  if (!Number.isInteger(classes) || classes < 1) throw new SurgeryError('classes', `classes must be a positive integer, got ${String(classes)}`);
}

function range(from: number, to: number): string {
  return to - from === 1 ? `block ${from}` : `blocks ${from}-${to - 1}`;
}

export function applySurgery(base: VisionTransformer, spec: MethodSpec, options: SurgeryOptions): SurgeryResult {
  validateClasses(options.classes);
  const depth = base.blocks.length;
  const resolved = resolveSpec(spec, depth);
  const headInit = options.headInit ?? 'random';
  const model = base.clone();
  try {
    model.head?.dispose();
    const head = newHead(model.width, options.classes, headInit, options.seed);
    model.head = head;
    const headText = `new head Linear(${model.width}, ${options.classes}) (${describeHeadInit(headInit)})`;
    let parts: Module[];
    let description: string;
    let adaptedProjections: string[] = [];
    switch (resolved.method) {
      case 'full':
        parts = [model];
        description = `everything trains: embeddings, all ${depth} blocks, the final norm and the ${headText}`;
        break;
      case 'linear':
        parts = [head];
        description = `only the ${headText} trains; the whole backbone is frozen`;
        break;
      case 'topk':
        parts = [...model.blocks.slice(depth - resolved.k), head];
        description =
          `${range(depth - resolved.k, depth)} and the ${headText} train; embeddings, ` +
          `${resolved.k === depth ? 'no other blocks' : range(0, depth - resolved.k)} and the final norm are frozen`;
        break;
      case 'lora': {
        const layers = injectLora(model, { rank: resolved.rank, alpha: resolved.alpha, targets: resolved.targets, seed: options.seed });
        adaptedProjections = layers.map(({ path }) => path);
        parts = [...layers.flatMap(({ layer }) => layer.adapters), head];
        const adapterCount = layers.reduce((sum, { layer }) => sum + layer.adapters.length, 0);
        description =
          `rank ${resolved.rank}, alpha ${resolved.alpha} (scale ${resolved.alpha / resolved.rank}) adapters on ${resolved.targets.join(', ')} of all ${depth} blocks ` +
          `(${adapterCount} A/B pairs in ${layers.length} projections; A uniform, B zero); base weights frozen; the ${headText} trains`;
        break;
      }
      case 'block': {
        const plan = planExpansion(depth, resolved.p, resolved.placement);
        const added = expandBlocks(model, plan);
        parts = [...added, head];
        description = `${describeExpansion(plan, resolved.placement)}; only the new blocks and the ${headText} train`;
        break;
      }
    }
    const trainability = assignTrainability(model, parts);
    return {
      model,
      ...trainability,
      method: methodLabel(resolved),
      spec: resolved,
      description,
      addedBlocks: model.addedBlocks,
      adaptedProjections,
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}
