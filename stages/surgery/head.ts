// The new classification head every method trains: Linear(width, classes) on the class token.

import { tfjsSeed } from '../../common/random';
import { Linear } from '../../models/vit/linear';

/**
 * 'random': timm's Linear init, truncated normal (std 0.02) weights and zero bias (the default);
 * 'zero': all zeros (timm's 'jax' head init), so the first logits are exactly zero.
 */
export type HeadInit = 'random' | 'zero';

export const HEAD_INIT_STD = 0.02;

export function newHead(width: number, classes: number, init: HeadInit = 'random', seed?: number): Linear {
  if (!Number.isInteger(classes) || classes < 1) throw new Error(`classes must be a positive integer, got ${classes}`);
  return Linear.init(width, classes, { std: init === 'zero' ? 0 : HEAD_INIT_STD, seed: tfjsSeed(seed) });
}

export function describeHeadInit(init: HeadInit): string {
  return init === 'zero' ? 'zero init' : `truncated-normal init with std ${HEAD_INIT_STD}, zero bias`;
}
