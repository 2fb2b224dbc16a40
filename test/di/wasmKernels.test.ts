import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';

describe('wasm kernels: Identity and same-dtype Cast share buffers', function () {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });

  it('a clone costs no memory and survives the original', () => {
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const buffers = tf.memory().numDataBuffers;
    const copy = tf.clone(x);
    const same = tf.cast(x, 'float32');
    expect(tf.memory().numDataBuffers, 'no new buffer').to.equal(buffers);
    x.dispose();
    expect([...copy.dataSync()]).to.deep.equal([1, 2, 3, 4]);
    expect([...same.dataSync()]).to.deep.equal([1, 2, 3, 4]);
    tf.dispose([copy, same]);
    expect(tf.memory().numDataBuffers, 'the buffer is freed with its last tensor').to.equal(buffers - 1);
  });

  it('a cast to another dtype still converts', () => {
    const x = tf.tensor1d([1.7, -2.2, 3]);
    const asInt = tf.cast(x, 'int32');
    expect(asInt.dtype).to.equal('int32');
    expect([...asInt.dataSync()]).to.deep.equal([1, -2, 3]);
    tf.dispose([x, asInt]);
  });

  it('a variable assigned after a clone leaves the clone unchanged', () => {
    const variable = tf.variable(tf.tensor1d([1, 2]));
    const snapshot = tf.clone(variable);
    variable.assign(tf.tensor1d([5, 6]));
    expect([...snapshot.dataSync()]).to.deep.equal([1, 2]);
    expect([...variable.dataSync()]).to.deep.equal([5, 6]);
    tf.dispose([variable, snapshot]);
  });
});

describe('wasm kernels: Slice and SplitV copy within the heap', function () {
  before(function () {
    if (tf.getBackend() !== 'wasm') this.skip();
  });

  /** x[begin : begin + size] computed from the values in JavaScript. */
  function expectedSlice(values: Float32Array, shape: number[], begin: number[], size: number[]): number[] {
    const strides = tf.util.computeStrides(shape);
    const out: number[] = [];
    const visit = (axis: number, offset: number) => {
      if (axis === shape.length) return void out.push(values[offset]);
      for (let i = 0; i < size[axis]; i++) visit(axis + 1, offset + (begin[axis] + i) * (axis < shape.length - 1 ? strides[axis] : 1));
    };
    visit(0, 0);
    return out;
  }

  it('slices every axis pattern like the definition', () => {
    const shape = [3, 4, 5, 6];
    const x = tf.randomNormal(shape, 0, 1, 'float32', 12);
    const values = x.dataSync() as Float32Array;
    const cases: [number[], number[]][] = [
      [[0, 0, 0, 0], [3, 4, 5, 6]],
      [[1, 0, 0, 0], [2, 4, 5, 6]],
      [[0, 1, 0, 0], [3, 2, 5, 6]],
      [[0, 0, 0, 2], [3, 4, 5, 3]],
      [[1, 2, 3, 4], [1, 1, 1, 1]],
      [[2, 1, 0, 0], [1, 3, 5, 6]],
      [[0, 3, 1, 0], [3, 1, 3, 6]],
      [[1, 0, 2, 1], [2, 4, 0, 3]],
    ];
    for (const [begin, size] of cases) {
      const sliced = tf.slice(x, begin, size);
      expect(sliced.shape, `slice [${begin}] [${size}]`).to.deep.equal(size);
      expect([...sliced.dataSync()], `slice [${begin}] [${size}]`).to.deep.equal(expectedSlice(values, shape, begin, size));
      sliced.dispose();
    }
    const ints = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32');
    expect([...tf.slice(ints, [0, 1], [2, 2]).dataSync()]).to.deep.equal([2, 3, 5, 6]);
    tf.dispose([x, ints]);
  });

  it('splits along any axis, in equal parts or given sizes', () => {
    const x = tf.randomNormal([4, 6, 3], 0, 1, 'float32', 13);
    const values = x.dataSync() as Float32Array;
    for (const axis of [0, 1, 2]) {
      const parts = tf.split(x, axis === 1 ? [1, 2, 3] : axis === 0 ? 2 : 3, axis);
      let at = 0;
      for (const part of parts) {
        const begin = [0, 0, 0];
        begin[axis] = at;
        expect([...part.dataSync()], `axis ${axis} at ${at}`).to.deep.equal(expectedSlice(values, x.shape, begin, part.shape));
        at += part.shape[axis];
      }
      tf.dispose(parts);
    }
    x.dispose();
  });
});
