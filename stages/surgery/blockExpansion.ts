// Block expansion (LLaMA Pro, scripts/block_expansion.py): walk the original blocks i = 0..N-1 and
// after every block with (i + 1) % split == 0 insert a copy of block i whose attn.proj and mlp.fc2
// (weight and bias) are zeroed, so the new block is an exact identity at start; split = N / p.
// The 'top' placement instead stacks p such copies of the last block on top of the network.
// New blocks are marked `added`: the depth in the model's config stays true, checkpoints record
// where they are, and the unplugged view skips them (the original network).

import * as tf from '@tensorflow/tfjs-core';
import { Block } from '../../models/vit/block';
import { Linear, Projection } from '../../models/vit/linear';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { BlockPlacement, SurgeryError } from './methodSpec';

export interface ExpansionPlan {
  /** For each new block, the original block it copies. */
  readonly sources: readonly number[];
  /** For each new block, its index in the expanded model. */
  readonly positions: readonly number[];
  readonly depth: number;
  readonly expandedDepth: number;
}

/** Where p new blocks go in a network of `depth` blocks (a pure function of the numbers). */
export function planExpansion(depth: number, p: number, placement: BlockPlacement = 'interleaved'): ExpansionPlan {
  if (!Number.isInteger(p) || p < 1 || p > depth) throw new SurgeryError('block.p', `block: p must be an integer in [1, ${depth}], got ${p}`);
  let sources: number[];
  if (placement === 'top') {
    sources = Array.from({ length: p }, () => depth - 1);
  } else {
    if (depth % p !== 0) throw new SurgeryError('block.p', `block: p = ${p} does not divide the depth ${depth}`);
    const split = depth / p;
    sources = Array.from({ length: depth }, (_, i) => i).filter((i) => (i + 1) % split === 0);
  }
  // Each new block sits right after its source, shifted by the new blocks inserted before it.
  const positions = placement === 'top' ? sources.map((_, j) => depth + j) : sources.map((source, j) => source + 1 + j);
  return { sources, positions, depth, expandedDepth: depth + p };
}

function zeroProjection(projection: Projection, path: string): void {
  if (!(projection instanceof Linear)) {
    throw new SurgeryError('block', `block: cannot zero ${path}: it is wrapped (${projection.constructor.name}); expand a model without adapters`);
  }
  const { weight, bias } = projection;
  tf.tidy(() => {
    weight.assign(tf.zerosLike(weight));
    bias?.assign(tf.zerosLike(bias));
  });
}

/**
 * Inserts the planned identity blocks into `model` (in place: apply it to a clone) and returns them.
 * The copies get their own variables; only attn.proj and mlp.fc2 of each copy are zeroed.
 */
export function expandBlocks(model: VisionTransformer, plan: ExpansionPlan): Block[] {
  if (model.blocks.length !== plan.depth) throw new Error(`block: the plan is for depth ${plan.depth} but the model has ${model.blocks.length} blocks`);
  const existing = model.addedBlocks;
  if (existing.length > 0) {
    throw new SurgeryError('block', `block: the model already has added blocks (at ${existing.join(', ')}); expand a model without added blocks`);
  }
  const added: Block[] = [];
  try {
    for (const source of plan.sources) {
      const copy = model.blocks[source].clone(true);
      added.push(copy);
      zeroProjection(copy.attn.proj, `blocks.${source}.attn.proj`);
      zeroProjection(copy.mlp.fc2, `blocks.${source}.mlp.fc2`);
    }
  } catch (error) {
    for (const block of added) block.dispose();
    throw error;
  }
  const blocks = [...model.blocks];
  plan.positions.forEach((position, j) => blocks.splice(position, 0, added[j]));
  model.blocks = blocks;
  return added;
}

export function describeExpansion(plan: ExpansionPlan, placement: BlockPlacement): string {
  const where = placement === 'top' ? 'on top of the network' : 'interleaved';
  return (
    `${plan.sources.length} new block(s) ${where} at position(s) ${plan.positions.join(', ')} ` +
    `(copies of block(s) ${plan.sources.join(', ')} with attn.proj and mlp.fc2 zeroed); depth ${plan.depth} -> ${plan.expandedDepth}`
  );
}
