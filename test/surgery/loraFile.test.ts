import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile } from '../../models/checkpoint/safetensors';
import { saveVit } from '../../models/checkpoint/vitCheckpoint';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { SurgeryResult, applySurgery, attachAdapters, loadAdapters, loraLayers, readAdapterInfo, saveAdapters } from '../../stages/surgery';
import { maxAbsDifference } from '../helpers/tensors';
import { bitEqual, tinyImages, tinyModel } from './fixtures';

function randomizeTrainables(result: SurgeryResult, seed: number): void {
  tf.tidy(() => result.trainable.forEach((variable, i) => variable.assign(tf.randomNormal(variable.shape, 0, 0.2, 'float32', seed * 1000 + i))));
}

describe('surgery: LoRA adapter files', () => {
  let folder: string;
  let base: VisionTransformer;
  let images: tf.Tensor4D;
  before(() => {
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-adapters-'));
    base = tinyModel(3);
    images = tinyImages(2);
  });
  after(() => {
    base.dispose();
    images.dispose();
    fs.rmSync(folder, { recursive: true, force: true });
  });

  it('writes only the adapters and the head, in PyTorch orientation, with rank, alpha, targets and architecture in the metadata', async () => {
    const result = applySurgery(base, { method: 'lora', rank: 4, alpha: 8, targets: ['value', 'fc2'] }, { classes: 10, seed: 1 });
    const file = path.join(folder, 'a.safetensors');
    try {
      randomizeTrainables(result, 1);
      await saveAdapters(result.model, file, { task: 'test' });
      const saved = SafetensorsFile.open(file);
      const names = saved.names;
      expect(names).to.have.length(3 * 4 + 2);
      expect(saved.info('blocks.1.attn.qkv.lora_A.v').shape).to.deep.equal([4, 32]);
      expect(saved.info('blocks.1.attn.qkv.lora_B.v').shape).to.deep.equal([32, 4]);
      expect(saved.info('blocks.2.mlp.fc2.lora_A').shape).to.deep.equal([4, 64]);
      expect(saved.info('blocks.2.mlp.fc2.lora_B').shape).to.deep.equal([32, 4]);
      expect(saved.info('head.weight').shape).to.deep.equal([10, 32]);
      const layer = loraLayers(result.model)[0].layer;
      const a = layer.adapters[0].A; // [32, 4] in the model
      const fromFile = saved.readFloat32('blocks.0.attn.qkv.lora_A.v'); // [4, 32]
      expect(fromFile[1 * 32 + 5]).to.equal(a.dataSync()[5 * 4 + 1]);
      expect(saved.metadata['vitpeft.adapter']).to.equal('lora');
      expect(JSON.parse(saved.metadata['vitpeft.lora'])).to.deep.equal({ rank: 4, alpha: 8, targets: ['value', 'fc2'] });
      expect(JSON.parse(saved.metadata['vitpeft.architecture'])).to.include({ width: 32, depth: 3, numClasses: 10 });
      expect(saved.metadata.task).to.equal('test');
      saved.close();
      expect(readAdapterInfo(file)).to.deep.include({ rank: 4, alpha: 8, targets: ['value', 'fc2'], classes: 10, addedBlocks: [] });
    } finally {
      result.model.dispose();
    }
  });

  it('swaps adapters onto the same base without reloading it: in place into a LoRA model, or attached to the base', async () => {
    const first = applySurgery(base, { method: 'lora', rank: 2 }, { classes: 6, seed: 1 });
    const second = applySurgery(base, { method: 'lora', rank: 2 }, { classes: 6, seed: 2 });
    const fileFirst = path.join(folder, 'first.safetensors');
    const fileSecond = path.join(folder, 'second.safetensors');
    let attached: SurgeryResult | undefined;
    try {
      randomizeTrainables(first, 1);
      randomizeTrainables(second, 2);
      await saveAdapters(first.model, fileFirst);
      await saveAdapters(second.model, fileSecond);
      const expectedFirst = first.model.forward(images);
      const expectedSecond = second.model.forward(images);
      expect(maxAbsDifference(expectedFirst, expectedSecond)).to.be.greaterThan(1e-3);

      attached = attachAdapters(base, fileFirst);
      const viaAttach = attached.model.forward(images);
      expect(maxAbsDifference(viaAttach, expectedFirst)).to.equal(0);
      expect(attached.method).to.equal('lora-r2');
      expect(attached.trainableCount).to.equal(first.trainableCount);

      loadAdapters(attached.model, fileSecond);
      const swapped = attached.model.forward(images);
      expect(maxAbsDifference(swapped, expectedSecond)).to.equal(0);
      loadAdapters(attached.model, fileFirst);
      const swappedBack = attached.model.forward(images);
      expect(bitEqual(swappedBack.dataSync(), expectedFirst.dataSync())).to.equal(true);

      const unplugged = attached.model.embedCls(images, { unplugged: true });
      const baseFeatures = base.embedCls(images);
      expect(maxAbsDifference(unplugged, baseFeatures)).to.equal(0);
      for (const t of [expectedFirst, expectedSecond, viaAttach, swapped, swappedBack, unplugged, baseFeatures]) t.dispose();
    } finally {
      first.model.dispose();
      second.model.dispose();
      attached?.model.dispose();
    }
  });

  it('refuses adapters that do not fit, saying what differs, and changes nothing', async () => {
    const rank2 = applySurgery(base, { method: 'lora', rank: 2 }, { classes: 6, seed: 1 });
    const rank4 = applySurgery(base, { method: 'lora', rank: 4 }, { classes: 6, seed: 1 });
    const keyed = applySurgery(base, { method: 'lora', rank: 2, targets: ['query', 'key'] }, { classes: 6, seed: 1 });
    const otherHead = applySurgery(base, { method: 'lora', rank: 2 }, { classes: 9, seed: 1 });
    const deeper = tinyModel(4);
    const deeperLora = applySurgery(deeper, { method: 'lora', rank: 2 }, { classes: 6, seed: 1 });
    const file = path.join(folder, 'r2.safetensors');
    const checkpoint = path.join(folder, 'plain.safetensors');
    try {
      await saveAdapters(rank2.model, file);
      await saveVit(base, checkpoint);
      const before = rank4.model.namedParameters().map(([, variable]) => Float32Array.from(variable.dataSync() as Float32Array));
      expect(() => loadAdapters(rank4.model, file)).to.throw(/r2\.safetensors: the adapters have rank 2 but the model's have 4/);
      rank4.model.namedParameters().forEach(([name, variable], i) => expect(bitEqual(variable.dataSync(), before[i]), name).to.equal(true));
      expect(() => loadAdapters(keyed.model, file)).to.throw(/targets \["query","value"\] but the model's have \["query","key"\]/);
      expect(() => loadAdapters(otherHead.model, file)).to.throw(/'head\.weight': has shape \[6,32\], the model expects \[9,32\]/);
      expect(() => loadAdapters(deeperLora.model, file)).to.throw(/was made for depth 3, but the model has depth 4/);
      expect(() => loadAdapters(base, file)).to.throw(/the model has no LoRA adapters/);
      expect(() => attachAdapters(base, checkpoint)).to.throw(/vitpeft\.adapter'.*not a vitpeft LoRA adapter file/);
    } finally {
      for (const result of [rank2, rank4, keyed, otherHead, deeperLora]) result.model.dispose();
      deeper.dispose();
    }
  });
});
