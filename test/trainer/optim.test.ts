import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { crossEntropy, softTargets } from '../../stages/trainer/loss';
import { AdamW, Sgd, clipByGlobalNorm } from '../../stages/trainer/optimizer';
import { learningRate } from '../../stages/trainer/schedule';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';

describe('trainer: schedule, loss, optimizers', () => {
  it('cosine with linear warmup from 0, as the paper code steps it', () => {
    const spec = { schedule: 'cosine' as const, lr: 0.1, warmupSteps: 10, steps: 110 };
    expect(learningRate(spec, 0)).to.equal(0);
    expect(learningRate(spec, 5)).to.be.closeTo(0.05, 1e-12);
    expect(learningRate(spec, 10)).to.be.closeTo(0.1, 1e-12);
    expect(learningRate(spec, 60)).to.be.closeTo(0.05, 1e-12);
    expect(learningRate(spec, 110)).to.be.closeTo(0, 1e-12);
    expect(learningRate({ ...spec, schedule: 'constant' }, 80)).to.equal(0.1);
  });

  it('soft-target cross-entropy equals -log softmax of the true class, smoothing spreads e/K', () => {
    const logits = tf.tensor2d([[1, 2, 3], [0, 0, 0]]);
    const labels = tf.tensor1d([2, 0], 'int32');
    const loss = crossEntropy(logits, softTargets(labels, 3));
    const expected = (-(3 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3))) + Math.log(3)) / 2;
    expect(loss.dataSync()[0]).to.be.closeTo(expected, 1e-6);
    expect([...softTargets(labels, 3, 0.3).dataSync()].map((v) => +v.toFixed(6))).to.deep.equal([0.1, 0.1, 0.8, 0.8, 0.1, 0.1]);
    tf.dispose([logits, labels, loss]);
  });

  it('SGD with momentum and weight decay follows torch.optim.SGD step by step', () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const sgd = new Sgd([p], 0.9, 0.1);
    const grads = [tf.tensor1d([0.5, 0.25]), tf.tensor1d([-1, 2])];
    // by hand: g1 = [0.5 + 0.1, 0.25 - 0.2] = [0.6, 0.05]; buf = g1; p = [1 - 0.1*0.6, -2 - 0.1*0.05]
    sgd.apply([grads[0]], 0.1);
    expect(maxAbsDifference(p, [0.94, -2.005])).to.be.below(1e-6);
    // g2 = [-1 + 0.094, 2 - 0.2005] = [-0.906, 1.7995]; buf = 0.9 * [0.6, 0.05] + g2 = [-0.366, 1.8445]; p -= 0.05 * buf
    sgd.apply([grads[1]], 0.05);
    expect(maxAbsDifference(p, [0.94 + 0.05 * 0.366, -2.005 - 0.05 * 1.8445])).to.be.below(1e-6);
    expect(tensorLeak(() => sgd.apply([grads[0]], 0.01))).to.equal(0);
    tf.dispose([p, ...grads]);
    sgd.dispose();
  });

  it('AdamW follows torch.optim.AdamW (decoupled decay, bias correction)', () => {
    const p = tf.variable(tf.tensor1d([1, -1]));
    const adam = new AdamW([p], [0.9, 0.999], 1e-8, 0.01);
    const g = tf.tensor1d([0.2, -0.4]);
    adam.apply([g], 0.1);
    // step 1: m = 0.1 g, v = 0.001 g^2, mhat = g, vhat = g^2 -> update = g/|g| = sign(g)
    expect(maxAbsDifference(p, [1 * (1 - 0.001) - 0.1, -1 * (1 - 0.001) + 0.1])).to.be.below(1e-6);
    const state = adam.getState();
    expect(state.step).to.equal(1);
    expect(maxAbsDifference(state.tensors.get('exp_avg.0')!, [0.02, -0.04])).to.be.below(1e-7);
    tf.dispose([p, g]);
    adam.dispose();
  });

  it('clips by global norm like clip_grad_norm_', () => {
    const grads = [tf.tensor1d([3, 0]), tf.tensor1d([4])];
    const { grads: clipped, norm } = clipByGlobalNorm(grads, 1);
    expect(norm).to.be.closeTo(5, 1e-6);
    expect(maxAbsDifference(clipped[0], [0.6, 0])).to.be.below(1e-5);
    expect(maxAbsDifference(clipped[1], [0.8])).to.be.below(1e-5);
    tf.dispose([...grads, ...clipped]);
  });
});
