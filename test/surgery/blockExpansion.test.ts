import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { inspectCheckpoint, loadVit, saveVit } from '../../models/checkpoint/vitCheckpoint';
import { Linear } from '../../models/vit/linear';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { BlockPlacement, SurgeryError, applySurgery, planExpansion } from '../../stages/surgery';
import { maxAbsDifference } from '../helpers/tensors';
import { bitEqual, tinyImages, tinyModel } from './fixtures';

// LLaMA Pro on 12 blocks: split = 12 / p, a copy of block i after every block with (i + 1) % split == 0.
const INTERLEAVED: Record<number, { sources: number[]; positions: number[] }> = {
  1: { sources: [11], positions: [12] },
  2: { sources: [5, 11], positions: [6, 13] },
  3: { sources: [3, 7, 11], positions: [4, 9, 14] },
  4: { sources: [2, 5, 8, 11], positions: [3, 7, 11, 15] },
};

function values(model: VisionTransformer, index: number): Map<string, Float32Array> {
  return new Map(model.blocks[index].namedParameters().map(([name, variable]) => [name, variable.dataSync() as Float32Array]));
}

describe('surgery: block expansion', () => {
  let base: VisionTransformer;
  let images: tf.Tensor4D;
  let baseFeatures: tf.Tensor2D;
  before(() => {
    base = tinyModel(12);
    images = tinyImages(2);
    baseFeatures = base.embedCls(images);
  });
  after(() => {
    base.dispose();
    images.dispose();
    baseFeatures.dispose();
  });

  it('plans the positions of LLaMA Pro for depth 12, p = 1..4, and p copies of the last block for the top placement', () => {
    for (const p of [1, 2, 3, 4]) {
      expect(planExpansion(12, p)).to.deep.equal({ ...INTERLEAVED[p], depth: 12, expandedDepth: 12 + p });
      expect(planExpansion(12, p, 'top')).to.deep.equal({
        sources: Array(p).fill(11),
        positions: Array.from({ length: p }, (_, j) => 12 + j),
        depth: 12,
        expandedDepth: 12 + p,
      });
    }
    expect(planExpansion(12, 6).positions).to.deep.equal([2, 5, 8, 11, 14, 17]);
    expect(() => planExpansion(12, 5)).to.throw(SurgeryError, /does not divide the depth 12/);
  });

  const cases: Array<[number, BlockPlacement]> = [
    [1, 'interleaved'],
    [2, 'interleaved'],
    [3, 'interleaved'],
    [4, 'interleaved'],
    [2, 'top'],
    [4, 'top'],
  ];
  for (const [p, placement] of cases) {
    it(`p = ${p} (${placement}): new blocks sit where the recipe says, are identities at start, and bypassing them gives the original network exactly`, () => {
      const result = applySurgery(base, { method: 'block', p, placement }, { classes: 10, seed: 1 });
      const model = result.model;
      try {
        const plan = placement === 'top' ? { sources: Array(p).fill(11), positions: Array.from({ length: p }, (_, j) => 12 + j) } : INTERLEAVED[p];
        expect(model.blocks).to.have.length(12 + p);
        expect(model.config.depth).to.equal(12 + p);
        expect(model.addedBlocks).to.deep.equal(plan.positions);
        expect(result.addedBlocks).to.deep.equal(plan.positions);
        expect(result.firstTrainableBlock).to.equal(plan.positions[0]);
        expect(result.description).to.contain(`position(s) ${plan.positions.join(', ')}`);

        // Original blocks keep their order and values; each new block copies its source except attn.proj and mlp.fc2, which are zero.
        const originals = model.blocks.map((_, i) => i).filter((i) => !plan.positions.includes(i));
        originals.forEach((index, original) => {
          for (const [name, data] of values(model, index)) expect(bitEqual(data, values(base, original).get(name)!), `blocks.${index}.${name}`).to.equal(true);
        });
        plan.positions.forEach((position, j) => {
          const source = values(base, plan.sources[j]);
          for (const [name, data] of values(model, position)) {
            if (/^(attn\.proj|mlp\.fc2)\./.test(name)) expect([...data].every((v) => v === 0), `blocks.${position}.${name} zeroed`).to.equal(true);
            else expect(bitEqual(data, source.get(name)!), `blocks.${position}.${name} copies block ${plan.sources[j]}`).to.equal(true);
          }
        });

        const atStart = model.embedCls(images);
        expect(maxAbsDifference(atStart, baseFeatures)).to.be.at.most(1e-5);

        // As if trained: the new blocks' zeroed layers take values; the network changes, its unplugged view does not.
        tf.tidy(() => {
          for (const position of plan.positions) {
            for (const projection of [model.blocks[position].attn.proj, model.blocks[position].mlp.fc2] as Linear[]) {
              projection.weight.assign(tf.randomNormal(projection.weight.shape, 0, 0.1, 'float32', position));
            }
          }
        });
        const trained = model.embedCls(images);
        expect(maxAbsDifference(trained, baseFeatures)).to.be.greaterThan(1e-3);
        const bypassed = model.embedCls(images, { unplugged: true });
        expect(maxAbsDifference(bypassed, baseFeatures)).to.equal(0);
        for (const t of [atStart, trained, bypassed]) t.dispose();
      } finally {
        model.dispose();
      }
    });
  }

  it('accepts split in place of p (split 3 adds 4 blocks to 12)', () => {
    const result = applySurgery(base, { method: 'block', split: 3 }, { classes: 10 });
    expect(result.addedBlocks).to.deep.equal(INTERLEAVED[4].positions);
    expect(result.method).to.equal('block-p4');
    result.model.dispose();
  });

  it('writes the true depth and the positions of new blocks to the checkpoint, and reads them back', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-block-'));
    const result = applySurgery(base, { method: 'block', p: 3 }, { classes: 10, seed: 2 });
    try {
      tf.tidy(() => {
        for (const variable of result.trainable) variable.assign(tf.add(variable, tf.randomNormal(variable.shape, 0, 0.05, 'float32', 9)));
      });
      const file = path.join(folder, 'expanded.safetensors');
      await saveVit(result.model, file);
      const summary = inspectCheckpoint(file);
      expect(summary.config.depth).to.equal(15);
      expect(summary.addedBlocks).to.deep.equal([4, 9, 14]);
      expect(JSON.parse(summary.metadata['vitpeft.architecture']).depth).to.equal(15);
      const { model: loaded } = loadVit(file);
      expect(loaded.addedBlocks).to.deep.equal([4, 9, 14]);
      const expected = result.model.forward(images);
      const got = loaded.forward(images);
      expect(maxAbsDifference(got, expected)).to.equal(0);
      const bypassed = loaded.embedCls(images, { unplugged: true });
      expect(maxAbsDifference(bypassed, baseFeatures)).to.equal(0);
      for (const t of [expected, got, bypassed]) t.dispose();
      loaded.dispose();
    } finally {
      result.model.dispose();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it('refuses to expand a model that already has added blocks', () => {
    const result = applySurgery(base, { method: 'block', p: 1 }, { classes: 10 });
    try {
      expect(() => applySurgery(result.model, { method: 'block', p: 1, placement: 'top' }, { classes: 10 })).to.throw(SurgeryError, /already has added blocks \(at 12\)/);
    } finally {
      result.model.dispose();
    }
  });
});
