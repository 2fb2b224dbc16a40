import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { AttentionShape, batchedAttention, classTokenAttention, depthwiseAttention } from '../../models/ops/attentionCore';
import { presetConfig } from '../../models/vit/config';
import { ForwardContext } from '../../models/vit/module';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { applySurgery } from '../../stages/surgery/applySurgery';
import { parseMethodLabel } from '../../stages/surgery/methodSpec';
import { forwardPrefix, forwardSuffix } from '../../stages/trainer/forward';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';

// The last block computes only the class token's row (Block.forwardClassToken): embedCls must be
// pool(forwardFeatures), which runs every row of every block, in value and in gradient.

const config = presetConfig('vit-ti16', { imageSize: 16, patchSize: 4, width: 24, depth: 3, heads: 3, mlpHidden: 48, numClasses: 0 });

/** The first row of each sequence: [batch, width]. */
function firstRows(rows: tf.Tensor2D, { batch, tokens }: AttentionShape): tf.Tensor2D {
  return tf.tidy(() => tf.reshape(tf.slice(tf.reshape(rows, [batch, tokens, -1]), [0, 0, 0], [batch, 1, -1]), [batch, -1]) as tf.Tensor2D);
}

/**
 * Every parameter of the model redrawn, so identity-initialised blocks and LoRA factors are not
 * trivial, and made trainable, so every gradient is compared.
 */
function scramble(model: VisionTransformer, seed: number): void {
  model.namedParameters().forEach(([, variable], index) => {
    variable.trainable = true;
    variable.assign(tf.tidy(() => tf.add(variable, tf.randomNormal(variable.shape, 0, 0.2, 'float32', seed + index))));
  });
}

/** Sum of (class features x upstream), and its gradient with respect to every parameter. */
function lossAndGradients(model: VisionTransformer, features: () => tf.Tensor2D, upstream: tf.Tensor2D) {
  const variables = model.namedParameters().map(([, variable]) => variable);
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(features(), upstream)) as tf.Scalar, variables);
    return { value, grads: variables.map((variable) => grads[variable.name]) };
  });
}

describe('class-token-only last block', () => {
  const shapes: (AttentionShape & { headDim: number })[] = [
    { batch: 2, tokens: 5, heads: 2, headDim: 4 },
    { batch: 3, tokens: 17, heads: 2, headDim: 32 },
  ];
  for (const shape of shapes) {
    const { batch, tokens, heads, headDim } = shape;
    it(`attention: the class row of full attention, batch ${batch}, ${tokens} tokens, ${heads} heads of ${headDim}, value and gradient`, () => {
      const width = heads * headDim;
      const qkv = tf.randomNormal([batch * tokens, 3 * width], 0, 1, 'float32', 3) as tf.Tensor2D;
      const upstream = tf.randomNormal([batch, width], 0, 1, 'float32', 4) as tf.Tensor2D;
      for (const full of [batchedAttention, depthwiseAttention]) {
        const [expected, expectedGradient] = tf.tidy(() => {
          const f = (input: tf.Tensor) => tf.sum(tf.mul(firstRows(full(input as tf.Tensor2D, shape), shape), upstream));
          return [firstRows(full(qkv, shape), shape), tf.grad(f)(qkv)];
        });
        const [actual, actualGradient] = tf.tidy(() => [classTokenAttention(qkv, shape), tf.grad((input: tf.Tensor) => tf.sum(tf.mul(classTokenAttention(input as tf.Tensor2D, shape), upstream)))(qkv)]);
        expect(actual.shape).to.deep.equal([batch, width]);
        expect(maxAbsDifference(actual, expected), `${full.name} outputs`).to.be.below(1e-5);
        expect(maxAbsDifference(actualGradient, expectedGradient), `${full.name} gradients`).to.be.below(1e-5);
        // The gradient reaches other tokens' keys and values, not their queries.
        const keysOfOthers = tf.tidy(() => tf.max(tf.abs(tf.slice(actualGradient, [1, width], [tokens - 1, 2 * width]))).dataSync()[0]);
        const queriesOfOthers = tf.tidy(() => tf.max(tf.abs(tf.slice(actualGradient, [1, 0], [tokens - 1, width]))).dataSync()[0]);
        expect(keysOfOthers).to.be.above(1e-3);
        expect(queriesOfOthers).to.equal(0);
        tf.dispose([expected, expectedGradient, actual, actualGradient]);
      }
      tf.dispose([qkv, upstream]);
    });
  }

  const methods = ['full', 'lora-r4', 'block-p1', 'block-p3', 'linear'];
  for (const method of methods) {
    const contexts: ForwardContext[] = method.startsWith('block') ? [{}, { unplugged: true }] : [{}];
    for (const context of contexts) {
      it(`${method}${context.unplugged ? ' (unplugged)' : ''}: embedCls equals pool(forwardFeatures), in value and in every parameter's gradient`, () => {
        const base = VisionTransformer.init(config, { seed: 5 });
        const { model } = applySurgery(base, parseMethodLabel(method), { classes: 4, seed: 1 });
        base.dispose();
        scramble(model, 20);
        const images = tf.randomNormal([3, 16, 16, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
        const upstream = tf.randomNormal([3, config.width], 0, 1, 'float32', 7) as tf.Tensor2D;
        const full = lossAndGradients(model, () => model.pool(model.forwardFeatures(images, context)), upstream);
        const fast = lossAndGradients(model, () => model.embedCls(images, context), upstream);
        expect(Math.abs(fast.value.dataSync()[0] - full.value.dataSync()[0])).to.be.below(1e-4);
        const names = model.namedParameters().map(([name]) => name);
        let nonzero = 0;
        fast.grads.forEach((gradient, i) => {
          if (!full.grads[i]) return expect(gradient, names[i]).to.equal(undefined);
          expect(maxAbsDifference(gradient, full.grads[i]), names[i]).to.be.below(1e-4);
          if (tf.tidy(() => tf.max(tf.abs(gradient)).dataSync()[0]) > 1e-3) nonzero++;
        });
        expect(nonzero, 'parameters with a gradient').to.be.above(5);
        // The training path: a frozen prefix, then the suffix with the head.
        const from = Math.min(model.blocks.length, Number(method === 'linear' ? model.blocks.length : method === 'block-p3' ? 0 : 1));
        const prefix = forwardPrefix(model, images, from, context);
        const logits = forwardSuffix(model, prefix, from, context);
        const expectedLogits = tf.tidy(() => model.forwardHead(model.pool(model.forwardFeatures(images, context))));
        expect(maxAbsDifference(logits, expectedLogits)).to.be.below(1e-5);
        tf.dispose([images, upstream, full.value, fast.value, ...full.grads, ...fast.grads, prefix.rows, logits, expectedLogits].filter((t) => t !== undefined));
        model.dispose();
      });
    }
  }

  it('leaves no tensors behind, forward or backward', () => {
    const model = VisionTransformer.init(config, { seed: 5 });
    const images = tf.randomNormal([2, 16, 16, 3]) as tf.Tensor4D;
    const upstream = tf.randomNormal([2, config.width]) as tf.Tensor2D;
    expect(tensorLeak(() => model.embedCls(images).dispose())).to.equal(0);
    expect(tensorLeak(() => {
      const { value, grads } = lossAndGradients(model, () => model.embedCls(images), upstream);
      tf.dispose([value, ...grads]);
    })).to.equal(0);
    tf.dispose([images, upstream]);
    model.dispose();
  });
});
