import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { AttentionShape, batchedAttention, depthwiseAttention } from '../../models/ops/attentionCore';
import { kernelPolicy, policyFor } from '../../models/ops/kernelPolicy';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';

const SHAPES: (AttentionShape & { headDim: number })[] = [
  { batch: 2, tokens: 5, heads: 2, headDim: 4 },
  { batch: 3, tokens: 7, heads: 3, headDim: 8 },
  { batch: 1, tokens: 17, heads: 1, headDim: 16 },
];

/** Output, and gradient of sum(output * upstream) with respect to qkv. */
function valueAndGradient(core: typeof batchedAttention, qkv: tf.Tensor2D, upstream: tf.Tensor2D, shape: AttentionShape) {
  return tf.tidy(() => {
    const { value, grads } = tf.valueAndGrads((input: tf.Tensor) => tf.sum(tf.mul(core(input as tf.Tensor2D, shape), upstream)))([qkv]);
    return { output: core(qkv, shape), loss: value, gradient: grads[0] };
  });
}

describe('attention core: depthwise-convolution formulation against batched matMul', () => {
  for (const shape of SHAPES) {
    const { batch, tokens, heads, headDim } = shape;
    it(`batch ${batch}, ${tokens} tokens, ${heads} heads of ${headDim}: same outputs and qkv gradients within float tolerance`, () => {
      const width = heads * headDim;
      const qkv = tf.randomNormal([batch * tokens, 3 * width], 0, 1, 'float32', 1) as tf.Tensor2D;
      const upstream = tf.randomNormal([batch * tokens, width], 0, 1, 'float32', 2) as tf.Tensor2D;
      const plain = valueAndGradient(batchedAttention, qkv, upstream, shape);
      const depthwise = valueAndGradient(depthwiseAttention, qkv, upstream, shape);
      expect(depthwise.output.shape).to.deep.equal([batch * tokens, width]);
      expect(maxAbsDifference(depthwise.output, plain.output), 'outputs').to.be.below(1e-5);
      expect(maxAbsDifference(depthwise.gradient, plain.gradient), 'gradients').to.be.below(1e-5);
      // Not trivially zero: attention spreads the gradient over q, k and v.
      const magnitude = tf.tidy(() => tf.max(tf.abs(plain.gradient)).dataSync()[0]);
      expect(magnitude).to.be.above(0.1);
      tf.dispose([qkv, upstream, plain, depthwise].flatMap((item) => (item instanceof tf.Tensor ? [item] : Object.values(item))));
    });
  }

  it('leaves no tensors behind, forward or backward', () => {
    const shape = { batch: 2, tokens: 5, heads: 2 };
    const qkv = tf.randomNormal([10, 24]) as tf.Tensor2D;
    const upstream = tf.randomNormal([10, 8]) as tf.Tensor2D;
    expect(tensorLeak(() => depthwiseAttention(qkv, shape).dispose())).to.equal(0);
    expect(tensorLeak(() => tf.dispose(Object.values(valueAndGradient(depthwiseAttention, qkv, upstream, shape))))).to.equal(0);
    tf.dispose([qkv, upstream]);
  });

  it('rejects a qkv that does not fit the shape, naming both', () => {
    const qkv = tf.zeros([9, 24]) as tf.Tensor2D;
    expect(() => depthwiseAttention(qkv, { batch: 2, tokens: 5, heads: 2 })).to.throw(/qkv has shape \[9,24\].*2 x 5 rows/);
    qkv.dispose();
  });

  it('the kernel policy picks the wasm formulations on wasm only', () => {
    expect(policyFor('wasm')).to.deep.equal({ attention: 'depthwise-conv', fusedBias: true, expViaSigmoid: true });
    const plain = { attention: 'batched-matmul', fusedBias: false, expViaSigmoid: false };
    expect(policyFor('tensorflow')).to.deep.equal(plain);
    expect(policyFor('cpu')).to.deep.equal(plain);
    expect(kernelPolicy()).to.deep.equal(policyFor(tf.getBackend()));
  });
});
