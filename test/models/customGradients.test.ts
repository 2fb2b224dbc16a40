import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { COLUMN_SUMS, GELU, NORMALIZE, provided } from '../../models/ops/backendKernels';
import { expOfNonPositive, gelu, geluComposed } from '../../models/ops/gelu';
import { normalize, normalizeComposed } from '../../models/ops/normalize';
import { repeatFirstAxis } from '../../models/ops/repeat';
import { LayerNorm } from '../../models/vit/layerNorm';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';

/** Output and the gradient of sum(f(x) * upstream) with respect to x. */
function valueAndGradient(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, upstream: tf.Tensor) {
  return tf.tidy(() => {
    const { grads } = tf.valueAndGrads((input: tf.Tensor) => tf.sum(tf.mul(f(input), upstream)))([x]);
    return { output: f(x), gradient: grads[0] };
  });
}

describe('hand-written gradients: GELU and LayerNorm against the formulas differentiated op by op', () => {
  const shapes = [
    [7, 12],
    [3, 5, 16],
  ];

  // Where the backend runs its own GELU / normalisation kernels (wasm: di/wasmProducts.ts), the
  // sums run in another order and erf is a polynomial: equal to float32 resolution, not bit for bit.
  const valueTolerance = (kernel: string) => (provided(kernel) ? 2e-6 : 0);

  for (const shape of shapes) {
    it(`gelu on [${shape}]: values identical (within 2e-6 with the backend's own kernel), gradient within 1e-6 (also far in the tails)`, () => {
      const x = tf.tidy(() => tf.concat([tf.randomNormal([1, ...shape.slice(1)], 0, 6, 'float32', 3), tf.randomNormal([shape[0] - 1, ...shape.slice(1)], 0, 1.5, 'float32', 4)]));
      const upstream = tf.randomNormal(shape, 0, 1, 'float32', 5);
      const custom = valueAndGradient(gelu, x, upstream);
      const composed = valueAndGradient(geluComposed, x, upstream);
      expect(maxAbsDifference(custom.output, composed.output), 'values').to.be.at.most(valueTolerance(GELU));
      expect(maxAbsDifference(custom.gradient, composed.gradient), 'gradients').to.be.below(1e-6);
      tf.dispose([x, upstream, custom.output, custom.gradient, composed.output, composed.gradient]);
    });

    it(`normalize on [${shape}]: values identical (within 2e-6 with the backend's own kernel), gradient within 1e-5`, () => {
      const x = tf.tidy(() => tf.add(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 6), 3), 2));
      const upstream = tf.randomNormal(shape, 0, 1, 'float32', 7);
      const custom = valueAndGradient((input) => normalize(input, 1e-6), x, upstream);
      const composed = valueAndGradient((input) => normalizeComposed(input, 1e-6), x, upstream);
      expect(maxAbsDifference(custom.output, composed.output), 'values').to.be.at.most(valueTolerance(NORMALIZE));
      expect(maxAbsDifference(custom.gradient, composed.gradient), 'gradients').to.be.below(1e-5);
      tf.dispose([x, upstream, custom.output, custom.gradient, composed.output, composed.gradient]);
    });
  }

  it('LayerNorm gives its scale and shift the gradients of the formula', () => {
    const norm = LayerNorm.init(12, 1e-6);
    tf.tidy(() => {
      norm.weight.assign(tf.randomNormal([12], 1, 0.3, 'float32', 8));
      norm.bias.assign(tf.randomNormal([12], 0, 0.3, 'float32', 9));
    });
    const x = tf.randomNormal([6, 12], 0, 2, 'float32', 10);
    const upstream = tf.randomNormal([6, 12], 0, 1, 'float32', 11);
    const loss = (f: () => tf.Tensor) => () => tf.sum(tf.mul(f(), upstream)) as tf.Scalar;
    const custom = tf.variableGrads(loss(() => norm.forward(x)), [norm.weight, norm.bias]);
    const composed = tf.variableGrads(loss(() => tf.add(tf.mul(normalizeComposed(x, 1e-6), norm.weight), norm.bias)), [norm.weight, norm.bias]);
    for (const name of [norm.weight.name, norm.bias.name]) expect(maxAbsDifference(custom.grads[name], composed.grads[name]), name).to.be.below(1e-5);
    tf.dispose([x, upstream, custom.value, composed.value, ...Object.values(custom.grads), ...Object.values(composed.grads)]);
    norm.dispose();
  });

  it('leave no tensors behind, forward or backward', () => {
    const x = tf.randomNormal([4, 8]);
    const upstream = tf.randomNormal([4, 8]);
    for (const f of [gelu, (input: tf.Tensor) => normalize(input, 1e-6)]) {
      expect(tensorLeak(() => f(x).dispose())).to.equal(0);
      expect(tensorLeak(() => tf.dispose(Object.values(valueAndGradient(f, x, upstream))))).to.equal(0);
    }
    tf.dispose([x, upstream]);
  });
});

describe("a class token repeated over the batch (repeatFirstAxis): tf.tile's values, its gradient as one column sum", () => {
  it("equals tf.tile in value and gradient (bit for bit where the backend has its column-sum kernel), with a few kernels instead of two an image", async () => {
    const token = tf.randomNormal([1, 1, 24], 0, 1, 'float32', 12);
    const upstream = tf.randomNormal([40, 1, 24], 0, 1, 'float32', 13);
    const ours = valueAndGradient((t) => repeatFirstAxis(t, 40), token, upstream);
    const tiled = valueAndGradient((t) => tf.tile(t, [40, 1, 1]), token, upstream);
    expect(maxAbsDifference(ours.output, tiled.output)).to.equal(0);
    expect(ours.gradient.shape).to.deep.equal([1, 1, 24]);
    expect(maxAbsDifference(ours.gradient, tiled.gradient)).to.be.at.most(provided(COLUMN_SUMS) ? 0 : 1e-5);
    const profile = await tf.profile(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(repeatFirstAxis(t, 40), upstream)))(token));
    expect(profile.kernels.length).to.be.below(15);
    expect(() => repeatFirstAxis(upstream, 2)).to.throw(/first axis of 1, got \[40,1,24\]/);
    expect(tensorLeak(() => tf.dispose(Object.values(valueAndGradient((t) => repeatFirstAxis(t, 40), token, upstream))))).to.equal(0);
    tf.dispose([token, upstream, ours.output, ours.gradient, tiled.output, tiled.gradient]);
  });
});

describe('exp of non-positive numbers (through sigmoid where that is faster)', () => {
  it('agrees with exp to float precision from 0 down to underflow', () => {
    const z = tf.tidy(() => tf.neg(tf.concat([tf.linspace(0, 5, 501), tf.linspace(5, 120, 116)])));
    const [fast, exact] = tf.tidy(() => [expOfNonPositive(z).dataSync(), tf.exp(z).dataSync()]);
    for (let i = 0; i < fast.length; i++) {
      const tolerance = 4e-7 * exact[i] + 1e-38;
      expect(Math.abs(fast[i] - exact[i]), `exp(${z.dataSync()[i]})`).to.be.at.most(tolerance);
    }
    z.dispose();
  });
});
