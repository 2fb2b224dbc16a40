// Seed 0 is a seed: TensorFlow.js reads a seed of 0 as none, which made the new head, the
// first LoRA A matrix and a seeded model's patch embedding differ from run to run for seed 0.

import { expect } from 'chai';
import { VisionTransformer } from '../../models/vit/visionTransformer';
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

describe('a model initialised with seed 0', () => {
  it('gets the same weights every time', () => {
    const config = { imageSize: 16, patchSize: 8, inChannels: 3, width: 16, depth: 1, heads: 1, mlpHidden: 16, numClasses: 2, layerNormEps: 1e-6 };
    const weights = () => {
      const model = VisionTransformer.init(config, { seed: 0 });
      const values = model.namedParameters().map(([name, variable]) => [name, Array.from(variable.dataSync())] as const);
      model.dispose();
      return values;
    };
    expect(weights()).to.deep.equal(weights());
  });
});
