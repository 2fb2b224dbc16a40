// Parity with PyTorch: the fixtures in test/fixtures/parity were written by
// scripts/parity/make_parity_fixture.py (a hand-written timm-equivalent ViT in PyTorch).
// The tolerance 2e-5 is tighter than the 2e-4 on purpose: it separates the timm and
// Hugging Face LayerNorm eps (which differ by 2.2e-4 in features), so a wrong eps fails here.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as path from 'path';
import { SafetensorsFile } from '../../models/checkpoint/safetensors';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { gridResampleMatrix } from '../../models/vit/posEmbed';
import { IMAGENET_MEAN, IMAGENET_STD, normalizeImages } from '../../stages/dataset/normalize';
import { maxAbsDifference } from '../helpers/tensors';

export const PARITY_DIR = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'parity');
const TOLERANCE = 2e-5;

function expected(name: string): Float32Array {
  const file = SafetensorsFile.open(path.join(PARITY_DIR, 'expected.safetensors'));
  try {
    return file.readFloat32(name);
  } finally {
    file.close();
  }
}

function images(name: 'images' | 'images48'): tf.Tensor4D {
  const file = SafetensorsFile.open(path.join(PARITY_DIR, 'expected.safetensors'));
  try {
    const shape = file.info(name).shape as [number, number, number, number];
    return normalizeImages(tf.tensor4d(file.readUint8(name), shape, 'int32'), IMAGENET_MEAN, IMAGENET_STD);
  } finally {
    file.close();
  }
}

describe('parity with the PyTorch reference', () => {
  let inputs: tf.Tensor4D;
  let inputs48: tf.Tensor4D;
  before(() => {
    inputs = images('images');
    inputs48 = images('images48');
  });
  after(() => {
    inputs.dispose();
    inputs48.dispose();
  });

  const cases = [
    { file: 'vit_timm.safetensors', expect: 'timm', layout: 'timm', eps: 1e-6, head: true },
    { file: 'vit_hf.safetensors', expect: 'hf', layout: 'huggingface', eps: 1e-12, head: true },
    { file: 'vit_hf_model.safetensors', expect: 'hf', layout: 'huggingface', eps: 1e-12, head: false },
  ];
  for (const c of cases) {
    it(`${c.file}: ${c.layout} layout, architecture inferred, features${c.head ? ' and logits' : ''} match`, () => {
      const { model, summary } = loadVit(path.join(PARITY_DIR, c.file));
      try {
        expect(summary.layout).to.equal(c.layout);
        expect(summary.config).to.deep.equal({
          imageSize: 32, patchSize: 8, inChannels: 3, width: 128, depth: 2, heads: 2, mlpHidden: 512,
          numClasses: c.head ? 10 : 0, layerNormEps: c.eps,
        });
        if (c.file === 'vit_hf_model.safetensors') expect(summary.ignored).to.have.members(['pooler.dense.weight', 'pooler.dense.bias']);
        if (c.file === 'vit_hf.safetensors') expect(summary.strippedPrefix).to.equal('vit.');
        const features = model.embedCls(inputs);
        expect(maxAbsDifference(features, expected(`${c.expect}.features`))).to.be.below(TOLERANCE);
        if (c.head) {
          const logits = model.forwardHead(features);
          expect(maxAbsDifference(logits, expected(`${c.expect}.logits`))).to.be.below(TOLERANCE);
          logits.dispose();
        }
        features.dispose();
      } finally {
        model.dispose();
      }
    });
  }

  it('the same weights under the other eps differ by more than the tolerance (the test can fail)', () => {
    const { model } = loadVit(path.join(PARITY_DIR, 'vit_timm.safetensors'), { layerNormEps: 1e-12 });
    const features = model.embedCls(inputs);
    expect(maxAbsDifference(features, expected('timm.features'))).to.be.above(TOLERANCE);
    features.dispose();
    model.dispose();
  });

  const resampling = [
    { key: 'bicubic_antialias', options: { mode: 'bicubic', antialias: true } },
    { key: 'bicubic', options: { mode: 'bicubic', antialias: false } },
    { key: 'bilinear', options: { mode: 'bilinear', antialias: false } },
  ] as const;
  for (const r of resampling) {
    it(`position embeddings resampled 4x4 -> 6x6 like torch (${r.key}), on the fly and at load time`, () => {
      const file = SafetensorsFile.open(path.join(PARITY_DIR, 'vit_timm.safetensors'));
      const pos = file.readFloat32('pos_embed');
      file.close();
      const matrix = gridResampleMatrix([4, 4], [6, 6], r.options);
      const resampled = new Float32Array(37 * 128);
      resampled.set(pos.subarray(0, 128));
      for (let i = 0; i < 36; i++) for (let j = 0; j < 16; j++) for (let k = 0; k < 128; k++) resampled[(1 + i) * 128 + k] += matrix[i * 16 + j] * pos[(1 + j) * 128 + k];
      expect(maxAbsDifference(resampled, expected(`pos_embed48.${r.key}`))).to.be.below(1e-6);

      const onTheFly = loadVit(path.join(PARITY_DIR, 'vit_timm.safetensors'), { posEmbedResample: r.options });
      const atLoad = loadVit(path.join(PARITY_DIR, 'vit_timm.safetensors'), { posEmbedResample: r.options, imageSize: 48 });
      expect(atLoad.model.config.imageSize).to.equal(48);
      const a = onTheFly.model.embedCls(inputs48);
      const b = atLoad.model.embedCls(inputs48);
      expect(maxAbsDifference(a, expected(`timm.features48.${r.key}`))).to.be.below(TOLERANCE);
      expect(maxAbsDifference(b, expected(`timm.features48.${r.key}`))).to.be.below(TOLERANCE);
      tf.dispose([a, b]);
      onTheFly.model.dispose();
      atLoad.model.dispose();
    });
  }
});
