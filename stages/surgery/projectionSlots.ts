// The four dense projections of every block (attn.qkv, attn.proj, mlp.fc1, mlp.fc2) as slots that
// surgery can read and replace, each with its full parameter path (blocks.N.attn.qkv).

import { Projection } from '../../models/vit/linear';
import { VisionTransformer } from '../../models/vit/visionTransformer';

export const PROJECTION_SITES = ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'] as const;
export type ProjectionSite = (typeof PROJECTION_SITES)[number];

export interface ProjectionSlot {
  readonly block: number;
  readonly site: ProjectionSite;
  /** e.g. blocks.3.attn.qkv */
  readonly path: string;
  get(): Projection;
  set(projection: Projection): void;
}

export function projectionSlots(model: VisionTransformer): ProjectionSlot[] {
  return model.blocks.flatMap((block, index) => {
    const slot = (site: ProjectionSite, get: () => Projection, set: (p: Projection) => void): ProjectionSlot => ({
      block: index,
      site,
      path: `blocks.${index}.${site}`,
      get,
      set,
    });
    return [
      slot('attn.qkv', () => block.attn.qkv, (p) => (block.attn.qkv = p)),
      slot('attn.proj', () => block.attn.proj, (p) => (block.attn.proj = p)),
      slot('mlp.fc1', () => block.mlp.fc1, (p) => (block.mlp.fc1 = p)),
      slot('mlp.fc2', () => block.mlp.fc2, (p) => (block.mlp.fc2 = p)),
    ];
  });
}
