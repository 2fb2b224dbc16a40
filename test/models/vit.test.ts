import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { inspectCheckpoint, loadVit, saveVit } from '../../models/checkpoint/vitCheckpoint';
import { presetConfig, VIT_PRESETS } from '../../models/vit/config';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';
import { PARITY_DIR } from './parity.test';

const tiny = presetConfig('vit-ti16', { imageSize: 16, patchSize: 8, width: 32, depth: 2, heads: 2, mlpHidden: 64, numClasses: 5 });

describe('VisionTransformer', () => {
  it('has the presets of the standard sizes', () => {
    expect(presetConfig('vit-b16')).to.include({ width: 768, depth: 12, heads: 12, patchSize: 16, imageSize: 224, mlpHidden: 3072, layerNormEps: 1e-6 });
    expect(Object.keys(VIT_PRESETS)).to.deep.equal(['vit-ti16', 'vit-s16', 'vit-b16', 'vit-l16']);
    expect(() => presetConfig('vit-x')).to.throw(/unknown architecture 'vit-x'/);
  });

  it('names its parameters like timm and counts ViT-B/16 exactly', () => {
    const model = VisionTransformer.init(presetConfig('vit-b16'));
    try {
      const names = model.namedParameters().map(([name]) => name);
      expect(names.slice(0, 4)).to.deep.equal(['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias']);
      expect(names).to.include.members(['blocks.11.attn.qkv.weight', 'blocks.0.mlp.fc2.bias', 'norm.weight']);
      // PROTOCOL.md: backbone 85,798,656 parameters.
      expect(model.parameterCount()).to.equal(85_798_656);
    } finally {
      model.dispose();
    }
  });

  it('a forward pass in a loop keeps the tensor count constant', () => {
    const model = VisionTransformer.init(tiny);
    const images = tf.randomNormal([3, 16, 16, 3]) as tf.Tensor4D;
    expect(tensorLeak(() => model.forward(images).dispose())).to.equal(0);
    expect(tensorLeak(() => model.embedCls(tf.zeros([2, 24, 24, 3]) as tf.Tensor4D).dispose())).to.equal(1); // the zeros input itself
    images.dispose();
    model.dispose();
  });

  it('a training step leaves the tensor count unchanged', () => {
    const model = VisionTransformer.init(tiny);
    const images = tf.randomNormal([4, 16, 16, 3]) as tf.Tensor4D;
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3], 'int32'), 5);
    const optimizer = tf.train.momentum(0.01, 0.9);
    const variables = model.namedParameters().map(([, v]) => v);
    const step = () => {
      const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, model.forward(images)) as tf.Scalar, true, variables);
      loss?.dispose();
    };
    expect(tensorLeak(step)).to.equal(0);
    tf.dispose([images, labels]);
    optimizer.dispose();
    model.dispose();
  });

  it('disposing a model releases all its tensors; a clone is independent', () => {
    const before = tf.memory().numTensors;
    const model = VisionTransformer.init(tiny);
    const copy = model.clone();
    const x = tf.randomNormal([1, 16, 16, 3]) as tf.Tensor4D;
    const original = model.forward(x);
    tf.tidy(() => copy.head!.weight.assign(tf.zerosLike(copy.head!.weight)));
    const changed = copy.forward(x);
    const again = model.forward(x);
    expect(maxAbsDifference(original, again)).to.equal(0);
    expect(maxAbsDifference(original, changed)).to.be.above(0);
    tf.dispose([x, original, changed, again]);
    model.dispose();
    copy.dispose();
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('saves in timm layout with its architecture and loads back bit for bit', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-vit-'));
    const { model } = loadVit(path.join(PARITY_DIR, 'vit_hf.safetensors'));
    const target = path.join(folder, 'saved.safetensors');
    await saveVit(model, target);
    const summary = inspectCheckpoint(target);
    expect(summary.layout).to.equal('timm');
    expect(summary.config).to.deep.equal(model.config);
    const reloaded = loadVit(target).model;
    const x = tf.randomNormal([2, 32, 32, 3]) as tf.Tensor4D;
    const a = model.forward(x);
    const b = reloaded.forward(x);
    expect(maxAbsDifference(a, b)).to.equal(0);
    tf.dispose([x, a, b]);
    model.dispose();
    reloaded.dispose();
  });

  it("draws its weights as the init scheme says: 'vitpeft' truncated at 2 sigma, 'dino' as DINO's vision_transformer.py", () => {
    // Large enough for standard deviations to 2%: 64 wide, patch 7 of 3 channels (fan-in 147).
    const config = presetConfig('vit-ti16', { imageSize: 28, patchSize: 7, width: 64, depth: 2, heads: 2, mlpHidden: 256, numClasses: 0 });
    const stats = (model: VisionTransformer, name: string) => {
      const variable = model.namedParameters().find(([n]) => n === name)?.[1];
      if (!variable) throw new Error(`no parameter ${name}`);
      const values = Array.from(variable.dataSync());
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
      return { std, max: Math.max(...values.map(Math.abs)) };
    };
    const vitpeft = VisionTransformer.init(config, { seed: 3 });
    const dino = VisionTransformer.init(config, { seed: 3, init: 'dino' });
    try {
      // A normal of std 0.02 cut at 2 sigma has std 0.02 * 0.8796 = 0.0176 and nothing past 0.04.
      for (const name of ['blocks.0.mlp.fc1.weight', 'blocks.1.attn.qkv.weight', 'pos_embed', 'patch_embed.proj.weight']) {
        const s = stats(vitpeft, name);
        expect(s.std, name).to.be.closeTo(0.0176, 0.0176 * 0.05);
        expect(s.max, name).to.be.at.most(0.04);
      }
      expect(stats(vitpeft, 'cls_token').max).to.be.below(1e-5);
      expect(stats(vitpeft, 'patch_embed.proj.bias').max).to.equal(0);
      // DINO: trunc_normal_(std=.02) cuts at +-2, so a plain normal: std 0.02, tails past 2 sigma.
      for (const name of ['blocks.0.mlp.fc1.weight', 'blocks.1.attn.qkv.weight']) {
        const s = stats(dino, name);
        expect(s.std, name).to.be.closeTo(0.02, 0.02 * 0.03);
        expect(s.max, name).to.be.above(0.06);
      }
      expect(stats(dino, 'pos_embed').std).to.be.closeTo(0.02, 0.02 * 0.08);
      expect(stats(dino, 'cls_token').std).to.be.closeTo(0.02, 0.02 * 0.4);
      // The patch embedding a Conv2d at PyTorch's default: uniform in +-1/sqrt(147) = +-0.0825 (std 0.0476), bias too.
      const bound = 1 / Math.sqrt(147);
      for (const name of ['patch_embed.proj.weight', 'patch_embed.proj.bias']) {
        const s = stats(dino, name);
        expect(s.max, name).to.be.at.most(bound);
        expect(s.std, name).to.be.closeTo(bound / Math.sqrt(3), (bound / Math.sqrt(3)) * (name.endsWith('bias') ? 0.25 : 0.03));
      }
      expect(stats(dino, 'norm.weight')).to.deep.equal({ std: 0, max: 1 });
    } finally {
      vitpeft.dispose();
      dino.dispose();
    }
  });

  it('rejects images that do not fit, naming the shape', () => {
    const model = VisionTransformer.init(tiny);
    const wrong = tf.zeros([1, 15, 16, 3]) as tf.Tensor4D;
    expect(() => model.forward(wrong)).to.throw(/images of shape \[1,15,16,3\] do not fit the model/);
    wrong.dispose();
    model.dispose();
  });
});
