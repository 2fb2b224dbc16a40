// Seed 0 is a seed: TensorFlow.js reads a seed of 0 as none, which made the new head and the
// first LoRA A matrix differ from run to run for the default seed.

import { expect } from 'chai';
import { applySurgery } from '../../stages/surgery';
import { tinyModel } from '../surgery/fixtures';

describe('surgery with seed 0', () => {
  it('draws the same head and LoRA A matrices every time, and other ones than seed 1', () => {
    const base = tinyModel(2);
    const values = (seed: number) => {
      const result = applySurgery(base, { method: 'lora', rank: 2 }, { classes: 3, seed });
      const drawn = result.trainableNames.map((name, i) => [name, Array.from(result.trainable[i].dataSync())] as const);
      result.model.dispose();
      return drawn;
    };
    try {
      const first = values(0);
      expect(values(0)).to.deep.equal(first);
      const other = values(1);
      expect(other.find(([name]) => name === 'head.weight')![1]).to.not.deep.equal(first.find(([name]) => name === 'head.weight')![1]);
      expect(other.find(([name]) => name.includes('lora_A'))![1]).to.not.deep.equal(first.find(([name]) => name.includes('lora_A'))![1]);
    } finally {
      base.dispose();
    }
  });
});
