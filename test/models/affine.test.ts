import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { affine } from '../../models/ops/affine';
import { kernelPolicy } from '../../models/ops/kernelPolicy';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';

describe('dense layer x W + b (bias fused into the product where the backend allows)', () => {
  it(`matches matMul + add in value and in all three gradients (fused here: ${kernelPolicy().fusedBias})`, () => {
    const x = tf.randomNormal([13, 7], 0, 1, 'float32', 1) as tf.Tensor2D;
    const weight = tf.randomNormal([7, 5], 0, 1, 'float32', 2) as tf.Tensor2D;
    const bias = tf.randomNormal([5], 0, 1, 'float32', 3) as tf.Tensor1D;
    const upstream = tf.randomNormal([13, 5], 0, 1, 'float32', 4);
    const loss = (f: (a: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor) => (a: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(f(a as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D), upstream));
    const fused = tf.valueAndGrads(loss(affine))([x, weight, bias]);
    const plain = tf.valueAndGrads(loss((a, w, b) => tf.add(tf.matMul(a, w), b)))([x, weight, bias]);
    const fusedValue = affine(x, weight, bias);
    const plainValue = tf.add(tf.matMul(x, weight), bias);
    expect(maxAbsDifference(fusedValue, plainValue), 'values').to.be.below(1e-5);
    ['x', 'weight', 'bias'].forEach((name, i) => expect(maxAbsDifference(fused.grads[i], plain.grads[i]), name).to.be.below(1e-5));
    expect(affine(x, weight, null).shape).to.deep.equal([13, 5]);
    expect(tensorLeak(() => tf.dispose(tf.valueAndGrads(loss(affine))([x, weight, bias]).grads))).to.equal(1); // the value
    tf.dispose([x, weight, bias, upstream, fusedValue, plainValue, fused.value, plain.value, ...fused.grads, ...plain.grads]);
  });

  it('trains only what is trainable: a frozen weight gets no gradient work, the input still does', () => {
    const weight = tf.variable(tf.randomNormal([4, 3], 0, 1, 'float32', 5), false);
    const bias = tf.variable(tf.randomNormal([3], 0, 1, 'float32', 6), true);
    const x = tf.randomNormal([6, 4], 0, 1, 'float32', 7) as tf.Tensor2D;
    const { value, grads } = tf.variableGrads(() => tf.sum(affine(x, weight as tf.Variable<tf.Rank.R2>, bias as tf.Variable<tf.Rank.R1>)) as tf.Scalar);
    expect(Object.keys(grads)).to.deep.equal([bias.name]);
    expect([...grads[bias.name].dataSync()]).to.deep.equal([6, 6, 6]);
    tf.dispose([weight, bias, x, value, ...Object.values(grads)]);
  });
});
