// vitpeft's own wasm kernels (di/wasmProducts.ts, di/wasm/products.c) against the stock
// compositions they replace, in value and gradient, on shapes that reach every remainder path;
// the committed modules against a rebuild from source; and the two-thread split in a process of
// its own (the suite runs on one thread).

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { productsModulePath } from '../../di/wasmProducts';
import { batchedAttention, classTokenAttention, fusedAttention } from '../../models/ops/attentionCore';
import { ADAMW_UPDATE, ATTENTION, ATTENTION_GRAD, COLUMN_SUMS, EMA_UPDATE, GELU, GELU_GRAD, LAYER_NORM_GRAD, LAYER_NORM_WEIGHT_GRAD, MATMUL_TN, NORMALIZE, NORMALIZE_GRAD, OWN_KERNELS, SGD_UPDATE, provided } from '../../models/ops/backendKernels';
import { columnSums, matMulExplicit, transposedProduct } from '../../models/ops/explicitTransposeMatMul';
import { gelu, geluComposed } from '../../models/ops/gelu';
import { attentionKernel } from '../../models/ops/kernelPolicy';
import { layerNorm, normalize, normalizeComposed } from '../../models/ops/normalize';
import { AdamW, Sgd } from '../../stages/trainer/optimizer';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** The WebAssembly API used here (the project's lib, ES2022, has no WebAssembly types). */
interface WebAssemblyApi {
  Module: { new (bytes: Uint8Array): object; imports(module: object): object[]; exports(module: object): { name: string }[] };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

/** The ids of a wasm binary's sections, and its imports and exports. */
function describeModule(file: string): { sections: number[]; imports: object[]; exports: string[] } {
  const bytes = fs.readFileSync(file);
  const sections: number[] = [];
  let at = 8;
  while (at < bytes.length) {
    sections.push(bytes[at++]);
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = bytes[at++];
      size |= (byte & 0x7f) << shift;
      if (!(byte & 0x80)) break;
    }
    at += size;
  }
  const module = new wasmApi.Module(bytes);
  return { sections, imports: wasmApi.Module.imports(module), exports: wasmApi.Module.exports(module).map((e) => e.name) };
}

describe("vitpeft's wasm kernels (di/wasm/products.c)", function () {
  this.timeout(120000);

  it('are installed on the wasm backend, and each op falls back to the stock composition elsewhere', () => {
    const onWasm = tf.getBackend() === 'wasm';
    for (const name of OWN_KERNELS) expect(provided(name), name).to.equal(onWasm);
    expect(OWN_KERNELS).to.have.length(14);
    expect(attentionKernel(17)).to.equal(onWasm ? 'fused-kernel' : attentionKernel(1000));
    expect(attentionKernel(197)).to.not.equal('fused-kernel');
  });

  it('the committed modules import only the heap, define no data, and export every kernel', () => {
    for (const shared of [true, false]) {
      const { sections, imports, exports } = describeModule(productsModulePath(shared));
      expect(imports).to.deep.equal([{ module: 'env', name: 'memory', kind: 'memory' }]);
      // No start (8), data (11) or data count (12) section: instantiating writes nothing into tfjs's heap.
      expect(sections.filter((id) => id === 8 || id === 11 || id === 12), `${shared} sections ${sections}`).to.deep.equal([]);
      expect(exports).to.have.members(['vp_matmul_tn', 'vp_column_sums', 'vp_gelu', 'vp_gelu_grad', 'vp_attention', 'vp_attention_grad', 'vp_normalize', 'vp_normalize_grad', 'vp_layer_norm', 'vp_layer_norm_grad', 'vp_layer_norm_weight_grad', 'vp_sgd', 'vp_adamw', 'vp_ema']);
    }
  });

  it('the committed modules are what di/wasm/build.sh makes from products.c (needs clang and lld: apt-get install clang lld)', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-wasm-'));
    try {
      execFileSync('bash', [path.join(ROOT, 'di', 'wasm', 'build.sh'), out], { stdio: 'pipe' });
      for (const name of ['products.wasm', 'products-single.wasm']) {
        expect(fs.readFileSync(path.join(out, name)).equals(fs.readFileSync(path.join(ROOT, 'di', 'wasm', name))), `${name} differs from a rebuild: run bash di/wasm/build.sh and commit`).to.equal(true);
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('X^T dY and column sums equal the transpose-and-matMul route, over every tile remainder and several row chunks', () => {
    for (const [T, I, J] of [[1, 1, 1], [5, 3, 13], [300, 7, 9], [600, 64, 24], [257, 4, 8], [33, 65, 130]]) {
      const x = tf.randomNormal([T, I], 0, 1, 'float32', T + I);
      const dy = tf.randomNormal([T, J], 0, 1, 'float32', T + J + 1);
      const product = transposedProduct(x, dy);
      const reference = matMulExplicit(x, dy, true, false);
      expect(product.shape, `${T}x${I}x${J}`).to.deep.equal([I, J]);
      expect(maxAbsDifference(product, reference), `${T}x${I}x${J}`).to.be.below(1e-6 * T + 1e-5);
      const batched = transposedProduct(tf.reshape(x, [1, T, I]), tf.reshape(dy, [1, T, J]));
      expect(batched.shape).to.deep.equal([1, I, J]);
      expect(maxAbsDifference(batched, reference)).to.be.below(1e-6 * T + 1e-5);
      expect(maxAbsDifference(columnSums(dy), tf.sum(dy, 0)), `column sums ${T}x${J}`).to.be.below(1e-6 * T + 1e-5);
      tf.dispose([x, dy, product, reference, batched]);
    }
    // A batched product (leading axis 2) takes the stock route and stays batched.
    const a = tf.randomNormal([2, 6, 3], 0, 1, 'float32', 11);
    const b = tf.randomNormal([2, 6, 4], 0, 1, 'float32', 12);
    expect(maxAbsDifference(transposedProduct(a, b), tf.matMul(a, b, true, false))).to.be.below(1e-5);
    tf.dispose([a, b]);
  });

  it('GELU equals the exact formula to float32 resolution, in value and gradient, and keeps zeros, infinities and NaN', () => {
    const x = tf.concat([tf.mul(tf.randomNormal([4099], 0, 1, 'float32', 21), 4), tf.tensor1d([0, -0, 1e-30, -1e-30, 13, -13, 40, -40, 88, -88, 1e30, -1e30, Infinity, -Infinity])]);
    const upstream = tf.randomNormal(x.shape, 0, 1, 'float32', 22);
    const loss = (f: (t: tf.Tensor) => tf.Tensor) => (t: tf.Tensor) => tf.sum(tf.mul(tf.where(tf.isFinite(t), f(t), tf.zerosLike(t)), upstream));
    expect(maxAbsDifference(gelu(x).slice(0, 4109), geluComposed(x).slice(0, 4109))).to.be.below(1e-6);
    expect(maxAbsDifference(tf.grad(loss(gelu))(x).slice(0, 4109), tf.grad(loss(geluComposed))(x).slice(0, 4109))).to.be.below(1e-6);
    // The same values as the formula, signs of zero and NaN included (x Phi(x) at -Infinity is -Infinity x 0, NaN, as in PyTorch).
    const edges = tf.tensor1d([Infinity, -Infinity, NaN, 1e30, -1e30, -40, 0, -0]);
    expect(Array.from(gelu(edges).dataSync())).to.deep.equal(Array.from(geluComposed(edges).dataSync()));
    expect(Array.from(gelu(edges).dataSync()).slice(0, 4)).to.deep.equal([Infinity, NaN, NaN, Math.fround(1e30)]);
    expect(Array.from(tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(tf.tensor1d([0, 1e30, -1e30, -40])).dataSync())).to.deep.equal([0.5, 1, 0, 0]);
    expect(tensorLeak(() => tf.dispose(tf.grad(loss(gelu))(x)))).to.equal(0);
    tf.dispose([x, upstream]);
  });

  it('attention equals the batched-matMul formulation in value and qkv gradient, and leaves no tensors', () => {
    for (const [batch, tokens, heads, headDim] of [[3, 5, 3, 7], [4, 17, 2, 32], [2, 1, 1, 4], [9, 6, 2, 5], [2, 64, 2, 20], [3, 9, 1, 48]]) {
      const shape = { batch, tokens, heads };
      const qkv = tf.randomNormal([batch * tokens, 3 * heads * headDim], 0, 1.5, 'float32', batch + tokens) as tf.Tensor2D;
      const upstream = tf.randomNormal([batch * tokens, heads * headDim], 0, 1, 'float32', 31);
      const loss = (core: typeof fusedAttention) => (t: tf.Tensor) => tf.sum(tf.mul(core(t as tf.Tensor2D, shape), upstream));
      const label = `${batch}x${tokens}x${heads}x${headDim}`;
      expect(maxAbsDifference(fusedAttention(qkv, shape), batchedAttention(qkv, shape)), label).to.be.below(1e-5);
      expect(maxAbsDifference(tf.grad(loss(fusedAttention))(qkv), tf.grad(loss(batchedAttention))(qkv)), label).to.be.below(1e-5);
      expect(tensorLeak(() => tf.dispose(tf.grad(loss(fusedAttention))(qkv)))).to.equal(0);
      tf.dispose([qkv, upstream]);
    }
    const qkv = tf.zeros([9, 24]) as tf.Tensor2D;
    expect(() => fusedAttention(qkv, { batch: 2, tokens: 5, heads: 2 })).to.throw(/qkv has shape \[9,24\].*2 x 5 rows/);
    qkv.dispose();
  });

  it("the class token's attention alone equals the full call's class-token rows bit for bit, and classTokenAttention in gradient", () => {
    for (const [batch, tokens, heads, headDim] of [[3, 5, 3, 7], [4, 17, 2, 32], [2, 1, 1, 4]]) {
      const shape = { batch, tokens, heads };
      const width = heads * headDim;
      const qkv = tf.randomNormal([batch * tokens, 3 * width], 0, 1.5, 'float32', 7 + tokens) as tf.Tensor2D;
      const full = fusedAttention(qkv, shape);
      const classRows = tf.gather(full, Array.from({ length: batch }, (_, b) => b * tokens));
      const alone = fusedAttention(qkv, shape, true);
      expect(alone.shape).to.deep.equal([batch, width]);
      expect(maxAbsDifference(alone, classRows), `${batch}x${tokens}`).to.equal(0);
      const upstream = tf.randomNormal([batch, width], 0, 1, 'float32', 51);
      const loss = (core: (t: tf.Tensor2D) => tf.Tensor) => (t: tf.Tensor) => tf.sum(tf.mul(core(t as tf.Tensor2D), upstream));
      const fusedGradient = tf.grad(loss((t) => fusedAttention(t, shape, true)))(qkv);
      expect(maxAbsDifference(fusedGradient, tf.grad(loss((t) => classTokenAttention(t, shape)))(qkv)), `${batch}x${tokens}`).to.be.below(1e-5);
      expect(tensorLeak(() => tf.dispose(tf.grad(loss((t) => fusedAttention(t, shape, true)))(qkv)))).to.equal(0);
      tf.dispose([qkv, full, classRows, alone, upstream, fusedGradient]);
    }
  });

  it('LayerNorm normalisation equals the formula in value and gradient, rows of any width', () => {
    for (const shape of [[7, 64], [3, 5, 13], [4, 1], [600, 3]]) {
      const x = tf.add(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', shape.length), 3), 1);
      const upstream = tf.randomNormal(shape, 0, 1, 'float32', 41);
      const loss = (f: (t: tf.Tensor, eps: number) => tf.Tensor) => (t: tf.Tensor) => tf.sum(tf.mul(f(t, 1e-6), upstream));
      expect(maxAbsDifference(normalize(x, 1e-6), normalizeComposed(x, 1e-6)), `${shape}`).to.be.below(2e-6);
      expect(maxAbsDifference(tf.grad(loss(normalize))(x), tf.grad(loss(normalizeComposed))(x)), `${shape}`).to.be.below(2e-5);
      expect(tensorLeak(() => tf.dispose(tf.grad(loss(normalize))(x)))).to.equal(0);
      tf.dispose([x, upstream]);
    }
  });

  it("LayerNorm with scale and shift: the composition's value bit for bit, and its gradients; a frozen scale and shift cost no gradient kernels", async () => {
    for (const shape of [[7, 64], [3, 5, 13], [4, 1], [600, 3]]) {
      const columns = shape[shape.length - 1];
      const x = tf.add(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', shape.length), 3), 1);
      const weight = tf.randomNormal([columns], 1, 0.5, 'float32', 7) as tf.Tensor1D;
      const bias = tf.randomNormal([columns], 0, 0.5, 'float32', 8) as tf.Tensor1D;
      const upstream = tf.randomNormal(shape, 0, 1, 'float32', 41);
      const composed = (t: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.add(tf.mul(normalizeComposed(t, 1e-6), w), b);
      const ours = (t: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => layerNorm(t, w as tf.Tensor1D, b as tf.Tensor1D, 1e-6);
      // The same statistics as normalize's kernel, then the scale and shift: the same bits.
      expect(maxAbsDifference(ours(x, weight, bias), tf.add(tf.mul(normalize(x, 1e-6), weight), bias)), `${shape}`).to.equal(0);
      expect(maxAbsDifference(ours(x, weight, bias), composed(x, weight, bias)), `${shape}`).to.be.below(1e-5);
      const loss = (f: typeof composed) => (t: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(t, w, b), upstream));
      const [dx, dw, db] = tf.grads(loss(ours))([x, weight, bias]);
      const [rx, rw, rb] = tf.grads(loss(composed))([x, weight, bias]);
      expect(maxAbsDifference(dx, rx), `${shape} dx`).to.be.below(5e-5);
      expect(maxAbsDifference(dw, rw), `${shape} dweight`).to.be.below(5e-5);
      expect(maxAbsDifference(db, rb), `${shape} dbias`).to.be.below(1e-5);
      // Only x's gradient asked for: neither the scale's nor the shift's is computed.
      const profile = await tf.profile(() => tf.grad((t: tf.Tensor) => loss(ours)(t, weight, bias))(x));
      const names = profile.kernels.map((k) => k.name);
      if (tf.getBackend() === 'wasm') {
        expect(names).to.include(LAYER_NORM_GRAD);
        expect(names).to.not.include(LAYER_NORM_WEIGHT_GRAD);
        expect(names).to.not.include(COLUMN_SUMS);
      }
      expect(tensorLeak(() => tf.dispose(tf.grads(loss(ours))([x, weight, bias])))).to.equal(0);
      tf.dispose([x, weight, bias, upstream, dx, dw, db, rx, rw, rb]);
    }
  });

  it('optimizer updates (SGD with and without momentum and decay, AdamW with mixed decay flags, the EMA) give the bits of the op-by-op composition', () => {
    const withoutOwn = <T>(names: string[], fn: () => T): T => {
      const configs = names.map((name) => tf.getKernel(name, tf.getBackend())!);
      configs.forEach((config) => tf.unregisterKernel(config.kernelName, config.backendName));
      try {
        return fn();
      } finally {
        configs.forEach((config) => tf.registerKernel(config));
      }
    };
    const shapes = [[7, 5], [13], [3, 4, 9], [1]];
    const run = (make: (variables: tf.Variable[]) => { apply(grads: tf.Tensor[], lr: number, decay?: number): void; dispose(): void }) => {
      const variables = shapes.map((shape, i) => tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 60 + i))));
      const optimizer = make(variables);
      for (let step = 0; step < 4; step++) {
        const grads = shapes.map((shape, i) => tf.randomNormal(shape, 0, 1, 'float32', 70 + 10 * step + i));
        optimizer.apply(grads, 0.05 / (step + 1), 0.04 + 0.1 * step);
        tf.dispose(grads);
      }
      const values = variables.map((v) => Array.from(v.dataSync()));
      optimizer.dispose();
      tf.dispose(variables);
      return values;
    };
    const makers = {
      'sgd momentum 0.9, decay 1e-4': (v: tf.Variable[]) => new Sgd(v, 0.9, 1e-4),
      'sgd momentum 0.9': (v: tf.Variable[]) => new Sgd(v, 0.9, 0),
      'sgd plain': (v: tf.Variable[]) => new Sgd(v, 0, 0),
      'adamw, decay flags': (v: tf.Variable[]) => new AdamW(v, [0.9, 0.999], 1e-8, 0.01, [true, false, true, false]),
      'adamw, betas 0.8/0.99, eps 1e-6': (v: tf.Variable[]) => new AdamW(v, [0.8, 0.99], 1e-6, 0),
    };
    for (const [label, make] of Object.entries(makers)) {
      const own = run(make);
      const composed = withoutOwn([SGD_UPDATE, ADAMW_UPDATE], () => run(make));
      expect(own, label).to.deep.equal(composed);
    }
    // The EMA through the DINO session's teacher update is covered by test/trainer/dino.test.ts; here the kernel alone.
    const average = tf.randomNormal([5, 6], 0, 1, 'float32', 81);
    const value = tf.randomNormal([5, 6], 0, 1, 'float32', 82);
    const fused = tf.engine().runKernel(EMA_UPDATE, { average, value }, { momentum: 0.9961 } as unknown as tf.NamedAttrMap) as tf.Tensor;
    expect(Array.from(fused.dataSync())).to.deep.equal(Array.from(tf.add(tf.mul(average, 0.9961), tf.mul(value, 1 - 0.9961)).dataSync()));
    const before = tf.memory().numTensors;
    run(makers['adamw, decay flags']);
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([average, value, fused]);
  });

  it('on two threads, products split between the caller and the helper give the one-thread values', () => {
    // A process of its own: the suite's backend has one thread and no helper.
    const script = `
      const tf = require('@tensorflow/tfjs');
      const { initBackend } = require(${JSON.stringify(path.join(ROOT, 'dist', 'di', 'backend'))});
      const ops = require(${JSON.stringify(path.join(ROOT, 'dist', 'models', 'ops', 'explicitTransposeMatMul'))});
      const { gelu, geluComposed } = require(${JSON.stringify(path.join(ROOT, 'dist', 'models', 'ops', 'gelu'))});
      const core = require(${JSON.stringify(path.join(ROOT, 'dist', 'models', 'ops', 'attentionCore'))});
      const norm = require(${JSON.stringify(path.join(ROOT, 'dist', 'models', 'ops', 'normalize'))});
      initBackend('wasm', { threads: 2 }).then((info) => {
        const diff = (a, b) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
        const x = tf.randomNormal([2176, 64], 0, 1, 'float32', 1), dy = tf.randomNormal([2176, 250], 0, 1, 'float32', 2);
        const qkv = tf.randomNormal([128 * 17, 192], 0, 1, 'float32', 3), up = tf.randomNormal([128 * 17, 64], 0, 1, 'float32', 4);
        const shape = { batch: 128, tokens: 17, heads: 2 };
        const loss = (c) => (t) => tf.sum(tf.mul(c(t, shape), up));
        const result = { threads: info.threads, product: [], columns: 0, gelu: 0, attention: 0, attentionGrad: 0 };
        for (let i = 0; i < 20; i++) result.product.push(diff(ops.transposedProduct(x, dy), ops.matMulExplicit(x, dy, true, false)));
        result.columns = diff(ops.columnSums(dy), tf.sum(dy, 0));
        result.gelu = diff(gelu(dy), geluComposed(dy));
        result.attention = diff(core.fusedAttention(qkv, shape), core.batchedAttention(qkv, shape));
        result.normalize = diff(norm.normalize(dy, 1e-6), norm.normalizeComposed(dy, 1e-6));
        const w = tf.randomNormal([250], 1, 0.5, 'float32', 5), b = tf.randomNormal([250], 0, 0.5, 'float32', 6);
        const composedNorm = (t) => tf.add(tf.mul(norm.normalizeComposed(t, 1e-6), w), b);
        result.layerNorm = diff(norm.layerNorm(dy, w, b, 1e-6), composedNorm(dy));
        result.layerNormGrad = diff(tf.grad((t) => tf.sum(tf.square(norm.layerNorm(t, w, b, 1e-6))))(dy), tf.grad((t) => tf.sum(tf.square(composedNorm(t))))(dy));
        result.attentionGrad = diff(tf.grad(loss(core.fusedAttention))(qkv), tf.grad(loss(core.batchedAttention))(qkv));
        process.stdout.write(JSON.stringify(result));
        process.exit(0);
      });`;
    const result = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, VITPEFT_THREADS: '2' } }));
    expect(result.threads).to.equal(2);
    expect(Math.max(...result.product)).to.be.below(1e-3);
    expect(result.columns).to.be.below(1e-3);
    expect(result.gelu).to.be.below(1e-5);
    expect(result.attention).to.be.below(1e-5);
    expect(result.attentionGrad).to.be.below(1e-5);
    expect(result.normalize).to.be.below(1e-5);
    expect(result.layerNorm).to.be.below(1e-5);
    expect(result.layerNormGrad).to.be.below(1e-3);
  });
});
