import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadVit, saveVit } from '../../models/checkpoint/vitCheckpoint';
import { Linear } from '../../models/vit/linear';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { LoraLinear, SurgeryError, SurgeryResult, applySurgery, injectLora, loraLayers, mergeLora, mergedCopy, unmergeLora } from '../../stages/surgery';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';
import { bitEqual, snapshot, tinyImages, tinyModel } from './fixtures';

/** Gives every B (and the head) random values, as training would. */
function perturbAdapters(result: SurgeryResult, seed = 5): void {
  tf.tidy(() => {
    loraLayers(result.model).forEach(({ layer }, i) =>
      layer.adapters.forEach((adapter, j) => adapter.B.assign(tf.randomNormal(adapter.B.shape, 0, 0.2, 'float32', seed * 1000 + i * 10 + j))),
    );
  });
}

function features(model: VisionTransformer, images: tf.Tensor4D, unplugged = false): tf.Tensor2D {
  return model.embedCls(images, { unplugged });
}

describe('surgery: LoRA', () => {
  let base: VisionTransformer;
  let images: tf.Tensor4D;
  let baseFeatures: tf.Tensor2D;
  before(() => {
    base = tinyModel(3);
    images = tinyImages(2);
    baseFeatures = features(base, images);
  });
  after(() => {
    base.dispose();
    images.dispose();
    baseFeatures.dispose();
  });

  for (const targets of [undefined, ['query', 'key', 'value', 'proj', 'fc1', 'fc2']]) {
    it(`is the identity at initialisation (targets ${targets?.join(', ') ?? 'query, value (default)'})`, () => {
      const result = applySurgery(base, { method: 'lora', rank: 4, alpha: 8, targets }, { classes: 10, seed: 1 });
      try {
        const adapted = features(result.model, images);
        expect(maxAbsDifference(adapted, baseFeatures)).to.be.at.most(1e-5);
        adapted.dispose();
        for (const { layer } of loraLayers(result.model)) {
          for (const adapter of layer.adapters) {
            expect([...adapter.B.dataSync()].every((v) => v === 0), 'B starts at zero').to.equal(true);
            expect(Math.max(...adapter.A.dataSync().map(Math.abs)), 'A is random').to.be.greaterThan(0);
          }
        }
      } finally {
        result.model.dispose();
      }
    });
  }

  it('adapts only the q and v slices of the fused qkv, and computes x W + b + (alpha/r) x A B', () => {
    const result = applySurgery(base, { method: 'lora', rank: 2, alpha: 6 }, { classes: 10, seed: 2 });
    perturbAdapters(result);
    try {
      const layer = result.model.blocks[1].attn.qkv as LoraLinear;
      expect(layer).to.be.instanceOf(LoraLinear);
      expect(layer.adapters.map((adapter) => [adapter.slice, adapter.offset, adapter.width])).to.deep.equal([
        ['q', 0, 32],
        ['v', 64, 32],
      ]);
      expect(result.model.blocks[1].attn.proj).to.be.instanceOf(Linear);
      const delta = layer.delta();
      const [dq, dk, dv] = tf.split(delta, 3, 1);
      expect(Math.max(...dk.dataSync().map(Math.abs)), 'key columns untouched').to.equal(0);
      expect(Math.max(...dq.dataSync().map(Math.abs))).to.be.greaterThan(0);
      expect(Math.max(...dv.dataSync().map(Math.abs))).to.be.greaterThan(0);

      const x = tf.randomNormal([5, 32], 0, 1, 'float32', 3) as tf.Tensor2D;
      const [q, v] = layer.adapters;
      const reference = tf.tidy(() => {
        const baseOut = tf.add(tf.matMul(x, layer.base.weight), layer.base.bias!);
        const lowQ = tf.mul(tf.matMul(tf.matMul(x, q.A), q.B), 3);
        const lowV = tf.mul(tf.matMul(tf.matMul(x, v.A), v.B), 3);
        return tf.add(baseOut, tf.concat([lowQ, tf.zerosLike(lowQ), lowV], 1));
      });
      const out = layer.forward(x, {});
      expect(maxAbsDifference(out, reference)).to.be.at.most(1e-5);
      for (const t of [delta, dq, dk, dv, x, reference, out]) t.dispose();
    } finally {
      result.model.dispose();
    }
  });

  it('merged and unmerged agree (B non-zero), differ from the base; unmerge restores the base weights bit for bit; unplugged is the base', () => {
    const result = applySurgery(base, { method: 'lora', rank: 4, alpha: 8, targets: ['query', 'value', 'fc1'] }, { classes: 10, seed: 4 });
    perturbAdapters(result);
    const model = result.model;
    const weightsBefore = snapshot(model);
    try {
      const unmerged = features(model, images);
      expect(maxAbsDifference(unmerged, baseFeatures)).to.be.greaterThan(1e-3);
      mergeLora(model);
      expect(loraLayers(model).every(({ layer }) => layer.merged)).to.equal(true);
      const merged = features(model, images);
      expect(maxAbsDifference(merged, unmerged)).to.be.at.most(1e-4);
      const mergedUnplugged = features(model, images, true);
      expect(maxAbsDifference(mergedUnplugged, baseFeatures)).to.equal(0);
      expect(tensorLeak(() => model.forward(images).dispose()), 'merged forward leaks nothing').to.equal(0);
      expect(() => mergeLora(model)).to.throw(/already merged/);

      unmergeLora(model);
      for (const [name, values] of snapshot(model)) expect(bitEqual(values, weightsBefore.get(name)!), name).to.equal(true);
      const again = features(model, images);
      expect(maxAbsDifference(again, unmerged)).to.equal(0);
      const unplugged = features(model, images, true);
      expect(maxAbsDifference(unplugged, baseFeatures)).to.equal(0);
      expect(() => unmergeLora(model)).to.throw(/not merged/);
      for (const t of [unmerged, merged, mergedUnplugged, again, unplugged]) t.dispose();
    } finally {
      model.dispose();
    }
  });

  it('refuses a merge whose result is not finite, and changes nothing', () => {
    const result = applySurgery(base, { method: 'lora', rank: 2 }, { classes: 10, seed: 6 });
    const layers = loraLayers(result.model);
    // Finite adapters whose product overflows float32 (2 x 1e20 x 1e20).
    tf.tidy(() => {
      layers[2].layer.adapters[1].A.assign(tf.fill([32, 2], 1e20));
      layers[2].layer.adapters[1].B.assign(tf.fill([2, 32], 1e20));
    });
    const poisoned = snapshot(result.model);
    try {
      const tensors = tf.memory().numTensors;
      expect(() => mergeLora(result.model)).to.throw(/blocks\.2\.attn\.qkv: merging gives a non-finite weight/);
      expect(tf.memory().numTensors, 'nothing left behind').to.equal(tensors);
      expect(layers.every(({ layer }) => !layer.merged)).to.equal(true);
      for (const [name, values] of snapshot(result.model)) expect(bitEqual(values, poisoned.get(name)!), name).to.equal(true);
      expect(() => mergedCopy(result.model)).to.throw(/non-finite/);
      expect(tf.memory().numTensors, 'a refused merged copy frees itself').to.equal(tensors);
    } finally {
      result.model.dispose();
    }
  });

  it('saves as a full checkpoint only through a merged copy, which loads back with the same outputs', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-lora-'));
    const result = applySurgery(base, { method: 'lora', rank: 4 }, { classes: 10, seed: 8 });
    perturbAdapters(result);
    const copy = mergedCopy(result.model);
    try {
      await saveVit(result.model, path.join(folder, 'x.safetensors')).then(
        () => expect.fail('saveVit should refuse a model with adapters'),
        (error: Error) => expect(error.message).to.match(/blocks\.0\.attn\.qkv .*wrapped by an adapter \(LoraLinear\).*merged copy/),
      );
      expect(loraLayers(copy)).to.have.length(0);
      expect(copy.namedParameters().map(([name]) => name)).to.deep.equal(base.namedParameters().map(([name]) => name).concat('head.weight', 'head.bias'));
      const file = path.join(folder, 'merged.safetensors');
      await saveVit(copy, file);
      const { model: loaded } = loadVit(file);
      const expected = result.model.forward(images);
      const fromCopy = copy.forward(images);
      const fromFile = loaded.forward(images);
      expect(maxAbsDifference(fromCopy, expected)).to.be.at.most(1e-4);
      expect(maxAbsDifference(fromFile, fromCopy)).to.equal(0);
      for (const t of [expected, fromCopy, fromFile]) t.dispose();
      loaded.dispose();
    } finally {
      copy.dispose();
      result.model.dispose();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it('refuses to adapt a projection that is already wrapped, before changing anything', () => {
    const result = applySurgery(base, { method: 'lora', rank: 2 }, { classes: 10 });
    try {
      expect(() => applySurgery(result.model, { method: 'lora', rank: 2, targets: ['value'] }, { classes: 10 })).to.throw(SurgeryError, /blocks\.0\.attn\.qkv is already wrapped/);
      const tensors = tf.memory().numTensors;
      expect(() => injectLora(result.model, { rank: 2, alpha: 2, targets: ['fc1', 'query'] })).to.throw(SurgeryError, /already wrapped/);
      expect(tf.memory().numTensors).to.equal(tensors);
      expect(result.model.blocks[0].mlp.fc1).to.be.instanceOf(Linear);
      expect(() => injectLora(result.model, { rank: 2, alpha: 2, targets: ['queries' as 'query'] })).to.throw(SurgeryError, /unknown target 'queries'/);
    } finally {
      result.model.dispose();
    }
  });
});
