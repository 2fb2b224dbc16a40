import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { MethodSpec, applySurgery } from '../../stages/surgery';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';
import { bitEqual, oneHotLabels, snapshot, tinyImages, tinyModel, trainStep } from './fixtures';

const WIDTH = 32;
const CLASSES = 5;
const BLOCK_PARAMETERS = 4 * WIDTH + (WIDTH * 3 * WIDTH + 3 * WIDTH) + (WIDTH * WIDTH + WIDTH) + (WIDTH * 64 + 64) + (64 * WIDTH + WIDTH);
const HEAD_PARAMETERS = WIDTH * CLASSES + CLASSES;

const blockNames = (index: number) =>
  ['norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias', 'attn.proj.weight', 'attn.proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias'].map(
    (name) => `blocks.${index}.${name}`,
  );
const HEAD = ['head.weight', 'head.bias'];

interface Case {
  readonly spec: MethodSpec;
  readonly label: string;
  readonly trainableNames: (allNames: string[]) => string[];
  readonly count: number;
  readonly firstTrainableBlock: number;
}

// A depth-4 model: what each method must train, by name and count.
const CASES: Case[] = [
  { spec: { method: 'full' }, label: 'full', trainableNames: (all) => all, count: -1, firstTrainableBlock: 0 },
  { spec: { method: 'linear' }, label: 'linear', trainableNames: () => HEAD, count: HEAD_PARAMETERS, firstTrainableBlock: 4 },
  { spec: { method: 'topk', k: 2 }, label: 'top2', trainableNames: () => [...blockNames(2), ...blockNames(3), ...HEAD], count: 2 * BLOCK_PARAMETERS + HEAD_PARAMETERS, firstTrainableBlock: 2 },
  {
    spec: { method: 'lora', rank: 2 },
    label: 'lora-r2',
    trainableNames: () => [0, 1, 2, 3].flatMap((i) => ['lora_A.q', 'lora_B.q', 'lora_A.v', 'lora_B.v'].map((name) => `blocks.${i}.attn.qkv.${name}`)).concat(HEAD),
    count: 2 * (WIDTH + WIDTH) * 2 * 4 + HEAD_PARAMETERS,
    firstTrainableBlock: 0,
  },
  {
    spec: { method: 'lora', rank: 3, alpha: 6, targets: ['key', 'proj', 'fc1', 'fc2'] },
    label: 'lora-r3-alpha6-t-key-proj-fc1-fc2',
    trainableNames: () =>
      [0, 1, 2, 3]
        .flatMap((i) => ['attn.qkv.lora_A.k', 'attn.qkv.lora_B.k', 'attn.proj.lora_A', 'attn.proj.lora_B', 'mlp.fc1.lora_A', 'mlp.fc1.lora_B', 'mlp.fc2.lora_A', 'mlp.fc2.lora_B'].map((name) => `blocks.${i}.${name}`))
        .concat(HEAD),
    count: 3 * ((WIDTH + WIDTH) + (WIDTH + WIDTH) + (WIDTH + 64) + (64 + WIDTH)) * 4 + HEAD_PARAMETERS,
    firstTrainableBlock: 0,
  },
  { spec: { method: 'block', p: 2 }, label: 'block-p2', trainableNames: () => [...blockNames(2), ...blockNames(5), ...HEAD], count: 2 * BLOCK_PARAMETERS + HEAD_PARAMETERS, firstTrainableBlock: 2 },
  { spec: { method: 'block', p: 1, placement: 'top' }, label: 'block-p1-top', trainableNames: () => [...blockNames(4), ...HEAD], count: BLOCK_PARAMETERS + HEAD_PARAMETERS, firstTrainableBlock: 4 },
];

describe('surgery: what trains', () => {
  let base: ReturnType<typeof tinyModel>;
  let images: tf.Tensor4D;
  let labels: tf.Tensor2D;
  before(() => {
    base = tinyModel(4);
    images = tinyImages(3);
    labels = oneHotLabels(3, CLASSES);
  });
  after(() => {
    base.dispose();
    images.dispose();
    labels.dispose();
  });

  for (const testCase of CASES) {
    it(`${testCase.label}: trains exactly the intended variables; a few SGD steps change only those, and the base not at all`, () => {
      const baseValues = snapshot(base);
      const baseFlags = base.namedParameters().map(([, variable]) => variable.trainable);
      const baseFeatures = base.embedCls(images);
      const result = applySurgery(base, testCase.spec, { classes: CLASSES, seed: 3 });
      const optimizer = tf.train.momentum(0.5, 0.9);
      try {
        const names = result.model.namedParameters().map(([name]) => name);
        expect(result.method).to.equal(testCase.label);
        expect(result.trainableNames).to.deep.equal(testCase.trainableNames(names));
        const flagged = result.model.namedParameters().filter(([, variable]) => variable.trainable).map(([name]) => name);
        expect(flagged, 'variable.trainable flags').to.deep.equal(result.trainableNames);
        const expectedCount = testCase.count === -1 ? base.parameterCount() + HEAD_PARAMETERS : testCase.count;
        expect(result.trainableCount).to.equal(expectedCount);
        expect(result.trainable.reduce((sum, variable) => sum + variable.size, 0)).to.equal(expectedCount);
        expect(result.firstTrainableBlock).to.equal(testCase.firstTrainableBlock);

        const before = snapshot(result.model);
        for (let step = 0; step < 3; step++) trainStep(result, optimizer, images, labels);
        const after = snapshot(result.model);
        const trainable = new Set(result.trainableNames);
        for (const [name, values] of before) {
          if (trainable.has(name)) expect(bitEqual(values, after.get(name)!), `${name} should have changed`).to.equal(false);
          else expect(bitEqual(values, after.get(name)!), `${name} is frozen and must be bit-for-bit unchanged`).to.equal(true);
        }

        for (const [name, values] of snapshot(base)) expect(bitEqual(values, baseValues.get(name)!), `base ${name}`).to.equal(true);
        expect(base.namedParameters().map(([, variable]) => variable.trainable)).to.deep.equal(baseFlags);
        const stillBase = base.embedCls(images);
        expect(maxAbsDifference(stillBase, baseFeatures)).to.equal(0);
        stillBase.dispose();

        expect(tensorLeak(() => trainStep(result, optimizer, images, labels)), 'tensors left by a training step').to.equal(0);
        expect(tensorLeak(() => result.model.forward(images).dispose()), 'tensors left by a forward pass').to.equal(0);
      } finally {
        optimizer.dispose();
        result.model.dispose();
        baseFeatures.dispose();
      }
    });
  }

  it('disposing the result frees everything surgery made; the base keeps working', () => {
    const before = tf.memory().numTensors;
    for (const { spec } of CASES) applySurgery(base, spec, { classes: CLASSES }).model.dispose();
    expect(tf.memory().numTensors).to.equal(before);
    const logits = tf.tidy(() => base.embedCls(images));
    expect(logits.shape).to.deep.equal([3, WIDTH]);
    logits.dispose();
  });

  it('gives a new head: small random by default (seeded), zero on request; a base head is replaced', () => {
    const withHead = applySurgery(base, { method: 'linear' }, { classes: 7, seed: 1 });
    const again = applySurgery(withHead.model, { method: 'linear' }, { classes: CLASSES, seed: 1 });
    const same = applySurgery(base, { method: 'linear' }, { classes: CLASSES, seed: 1 });
    const zero = applySurgery(base, { method: 'linear' }, { classes: CLASSES, headInit: 'zero' });
    try {
      expect(again.model.head!.outFeatures).to.equal(CLASSES);
      const weights = again.model.head!.weight.dataSync();
      expect(Math.max(...weights.map(Math.abs))).to.be.greaterThan(0).and.at.most(0.04);
      expect(bitEqual(weights, same.model.head!.weight.dataSync())).to.equal(true);
      expect([...zero.model.head!.weight.dataSync()].every((v) => v === 0)).to.equal(true);
      expect([...again.model.head!.bias!.dataSync()].every((v) => v === 0)).to.equal(true);
      expect(withHead.model.head!.outFeatures).to.equal(7);
    } finally {
      for (const result of [withHead, again, same, zero]) result.model.dispose();
    }
  });
});
