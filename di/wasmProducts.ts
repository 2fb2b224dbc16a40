// The wasm backend's own kernels for the models/ops/backendKernels.ts names, from a module of
// ours (di/wasm/products.c) that imports TensorFlow.js's heap and works on tensors where they lie:
// - a dense layer's weight gradient X^T dY and bias gradient (column sums of dY): tfjs's route
//   transposes X, then XNNPACK packs dY before the product, and on the DINO step's shapes the
//   packing alone cost more than the arithmetic;
// - the exact GELU forward and backward, one pass each (tfjs: a scalar erf and 5 + 8 kernels);
// - multi-head attention on timm's fused qkv rows, forward and backward, for short sequences;
// - LayerNorm's normalisation, with its scale and shift or without, forward and backward, one pass each;
// - the SGD, AdamW and EMA updates, one pass per variable, with the bits of the composed ops.
//
// The module is compiled C (di/wasm/products.c, built by di/wasm/build.sh and committed), in two
// builds: one imports the threaded tfjs build's shared heap (di/wasmThreads.ts), the other the
// stock single-threaded build's unshared one.
//
// With more than one thread, a large product's output rows are shared, tile by tile, between the
// calling thread and one helper worker that instantiates the same module on the same memory. They
// meet through a small control block in the heap (atomics): the caller posts a job and claims
// tiles until none is left, then waits only for tiles the helper has claimed. A helper that wakes
// late (XNNPACK's own worker may still be spinning on the second core) costs nothing but its
// share. The helper is unref()'d, so it never keeps a process alive.

import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { ADAMW_UPDATE, ATTENTION, ATTENTION_GRAD, COLUMN_SUMS, EMA_UPDATE, GELU, GELU_GRAD, LAYER_NORM, LAYER_NORM_GRAD, LAYER_NORM_WEIGHT_GRAD, MATMUL_TN, NORMALIZE, NORMALIZE_GRAD, SGD_UPDATE } from '../models/ops/backendKernels';

/** The parts of tfjs-backend-wasm's BackendWasm used here. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object): boolean;
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  /** The heap is wasmMemory in the threaded build, the module's exported asm.memory in the stock one. */
  wasm: { wasmMemory?: unknown; asm?: { memory?: unknown }; _malloc(bytes: number): number };
}

/** The WebAssembly API used here, declared locally: the project's lib (ES2022) has no WebAssembly types. */
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => { buffer: ArrayBuffer | SharedArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}

/** The module's functions, in the order of their index in the control block; each ends with a row range [r0, r1). */
const FUNCTIONS = ['vp_matmul_tn', 'vp_column_sums', 'vp_gelu', 'vp_gelu_grad', 'vp_attention', 'vp_attention_grad', 'vp_normalize', 'vp_normalize_grad', 'vp_sgd', 'vp_adamw', 'vp_ema', 'vp_layer_norm', 'vp_layer_norm_grad', 'vp_layer_norm_weight_grad'] as const;
type RowKernel = (...args: number[]) => void;

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Below this many multiply-adds a kernel runs on the calling thread alone (waking the helper costs ~0.05 ms). */
const SPLIT_WORK = 1 << 19;
/** A job whose claimed rows are not all done after this long means the helper is gone: fail loudly rather than hang. */
const HELPER_TIMEOUT_MS = 120_000;

// Control block, Int32 slots. A job is posted by writing its function and arguments into the
// slots of its sequence number's parity, zeroing COMPLETED, then publishing NEXT = (seq << 16) |
// 0 and SEQ = seq. Both threads claim row tiles by a compare-and-swap on NEXT that also checks the
// sequence number, so a helper that wakes late claims nothing of a finished job, and arguments it
// read are the job's whenever its claim succeeds (the other parity's slots are the only ones
// written while a job runs). The caller returns once COMPLETED counts every tile.
const SEQ = 0;
const NEXT = 1;
const COMPLETED = 2;
const READY = 3;
const JOB = 4; // two job records of JOB_SLOTS each: function index, tiles, tile rows, rows, argument count, arguments
const JOB_SLOTS = 24;
const CONTROL_SLOTS = JOB + 2 * JOB_SLOTS;
const MAX_SEQ = 0x7fff;

/** The helper worker's whole source: instantiate the module on the shared heap, then claim tiles of posted jobs. */
const HELPER_SOURCE = `
const { workerData } = require('worker_threads');
const { module, memory, control, names } = workerData;
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
const functions = names.map((name) => exports[name]);
const ctl = new Int32Array(memory.buffer, control, ${CONTROL_SLOTS});
Atomics.store(ctl, ${READY}, 1);
let seen = Atomics.load(ctl, ${SEQ});
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen);
  const seq = Atomics.load(ctl, ${SEQ});
  if (seq === seen) continue;
  seen = seq;
  const job = ${JOB} + (seq & 1) * ${JOB_SLOTS};
  const index = ctl[job], tiles = ctl[job + 1], tileRows = ctl[job + 2], rows = ctl[job + 3], count = ctl[job + 4];
  const args = Array.from(ctl.subarray(job + 5, job + 5 + count));
  for (;;) {
    const current = Atomics.load(ctl, ${NEXT});
    const tile = current & 0xffff;
    if (current >>> 16 !== seq || tile >= tiles) break;
    if (Atomics.compareExchange(ctl, ${NEXT}, current, current + 1) !== current) continue;
    functions[index](...args, tile * tileRows, Math.min(rows, (tile + 1) * tileRows));
    Atomics.add(ctl, ${COMPLETED}, 1);
    Atomics.notify(ctl, ${COMPLETED});
  }
}
`;

/** Runs a row kernel over [0, rows), sharing row tiles with the helper when there is one and the work is large. */
class RowRunner {
  private seq = 0;

  constructor(
    private readonly functions: readonly RowKernel[],
    private readonly control: Int32Array | null,
  ) {}

  run(index: number, args: readonly number[], rows: number, work: number): void {
    const control = this.control;
    const kernel = this.functions[index];
    if (!control || work < SPLIT_WORK || rows < 8 || Atomics.load(control, READY) !== 1) {
      kernel(...args, 0, rows);
      return;
    }
    // Tiles of a multiple of 4 rows (the kernels' row tile), at most 16 per job.
    const tileRows = Math.max(4, Math.ceil(rows / 16 / 4) * 4);
    const tiles = Math.ceil(rows / tileRows);
    this.seq = (this.seq % MAX_SEQ) + 1;
    const seq = this.seq;
    const job = JOB + (seq & 1) * JOB_SLOTS;
    control.set([index, tiles, tileRows, rows, args.length, ...args], job);
    Atomics.store(control, COMPLETED, 0);
    Atomics.store(control, NEXT, seq << 16);
    Atomics.store(control, SEQ, seq);
    Atomics.notify(control, SEQ);
    for (;;) {
      const current = Atomics.load(control, NEXT);
      const tile = current & 0xffff;
      if (tile >= tiles) break;
      if (Atomics.compareExchange(control, NEXT, current, current + 1) !== current) continue;
      kernel(...args, tile * tileRows, Math.min(rows, (tile + 1) * tileRows));
      Atomics.add(control, COMPLETED, 1);
    }
    const started = Date.now();
    for (let completed = Atomics.load(control, COMPLETED); completed < tiles; completed = Atomics.load(control, COMPLETED)) {
      Atomics.wait(control, COMPLETED, completed, 1000);
      if (Date.now() - started > HELPER_TIMEOUT_MS) throw new Error(`di/wasmProducts: the helper thread did not finish its part of a ${FUNCTIONS[index]} job in ${HELPER_TIMEOUT_MS / 1000} s`);
    }
  }
}

/**
 * The module's file (products.wasm for a shared heap, products-single.wasm for the stock build's
 * unshared one): beside this source, or, from the compiled dist/di, in the package's di/wasm.
 */
export function productsModulePath(shared: boolean): string {
  const name = shared ? 'products.wasm' : 'products-single.wasm';
  const candidates = [path.join(__dirname, 'wasm', name), path.join(__dirname, '..', '..', 'di', 'wasm', name)];
  const found = candidates.find((file) => fs.existsSync(file));
  if (!found) throw new Error(`di/wasm/${name} not found (looked in ${candidates.join(', ')})`);
  return found;
}

function rowsAndColumns(x: tf.TensorInfo): [number, number] {
  return [x.shape[x.shape.length - 2], x.shape[x.shape.length - 1]];
}

let installed: { threads: number } | undefined;

/**
 * Registers the kernels of models/ops/backendKernels.ts for the running 'wasm' backend, with a
 * helper thread when its heap is shared and `threads` > 1. Returns whether they are installed, or why not.
 */
export function registerWasmProducts(threads: number): { installed: true; threads: number } | { installed: false; reason: string } {
  if (installed) return { installed: true, ...installed };
  const backend = tf.backend() as unknown as WasmBackendLike;
  const wasm = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  if (!wasm) return { installed: false, reason: 'no WebAssembly in this runtime' };
  const memory = backend.wasm?.wasmMemory ?? backend.wasm?.asm?.memory;
  if (!(memory instanceof wasm.Memory)) return { installed: false, reason: "tfjs's wasm heap was not found (wasmMemory, asm.memory)" };
  const shared = memory.buffer instanceof SharedArrayBuffer;
  let file: string;
  try {
    file = productsModulePath(shared);
  } catch (error) {
    return { installed: false, reason: (error as Error).message };
  }
  const module = new wasm.Module(fs.readFileSync(file));
  const exports = new wasm.Instance(module, { env: { memory } }).exports as Record<string, RowKernel>;
  let control: Int32Array | null = null;
  if (threads > 1 && shared) {
    // Allocated once and never freed: the helper reads it for the life of the process.
    const offset = backend.wasm._malloc(CONTROL_SLOTS * 4);
    control = new Int32Array(memory.buffer, offset, CONTROL_SLOTS).fill(0);
    const helper = new Worker(HELPER_SOURCE, { eval: true, workerData: { module, memory, control: offset, names: FUNCTIONS } });
    helper.unref();
  }
  const runner = new RowRunner(
    FUNCTIONS.map((name) => exports[name]),
    control,
  );
  /** Registers a kernel for 'wasm': `run` gets the backend, the named inputs (absent ones undefined) and the attributes. */
  const register = (kernelName: string, run: (b: WasmBackendLike, inputs: Partial<Record<string, tf.TensorInfo>>, attrs: Record<string, number>) => tf.TensorInfo | tf.TensorInfo[]) =>
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend, attrs }: KernelArgs) => run(backend as unknown as WasmBackendLike, inputs as Partial<Record<string, tf.TensorInfo>>, (attrs ?? {}) as unknown as Record<string, number>),
    });
  const offset = (b: WasmBackendLike, x: tf.TensorInfo) => b.dataIdMap.get(x.dataId).memoryOffset;
  const float32Bits = (value: number) => new Int32Array(new Float32Array([value]).buffer)[0];

  register(MATMUL_TN, (b, { a: x, b: d }) => {
    const [T, I] = rowsAndColumns(x!);
    const [rowsD, J] = rowsAndColumns(d!);
    if (rowsD !== T) throw new Error(`${MATMUL_TN}: a has ${T} rows, b has ${rowsD}`);
    const out = b.makeOutput([I, J], 'float32');
    if (I * J > 0) runner.run(0, [offset(b, x!), offset(b, d!), offset(b, out), T, I, J], I, T * I * J);
    return out;
  });
  register(COLUMN_SUMS, (b, { x }) => {
    const [T, J] = rowsAndColumns(x!);
    const out = b.makeOutput([J], 'float32');
    if (J > 0) runner.run(1, [offset(b, x!), offset(b, out), T, J], J, T * J);
    return out;
  });

  /**
   * An element-wise kernel over inputs of one size (absent optional ones read as the first, never
   * used) with `outputs` outputs of the first's shape and float32 scalar arguments after them.
   */
  const elementwise = (kernelName: string, index: number, names: readonly string[], outputs = 1, scalars: (attrs: Record<string, number>) => number[] = () => []) =>
    register(kernelName, (b, inputs, attrs) => {
      const operands = names.map((name) => inputs[name]);
      const first = operands[0]!;
      const size = tf.util.sizeFromShape(first.shape);
      if (operands.some((x) => x && (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) !== size))) throw new Error(`${kernelName}: expected float32 inputs of one size`);
      const results = Array.from({ length: outputs }, () => b.makeOutput([...first.shape], 'float32'));
      const addresses = operands.map((x) => offset(b, x ?? first));
      if (size > 0) runner.run(index, [...addresses, ...results.map((x) => offset(b, x)), ...scalars(attrs).map(float32Bits)], size, size * 16);
      return results.length === 1 ? results[0] : results;
    });
  elementwise(GELU, 2, ['x']);
  elementwise(GELU_GRAD, 3, ['x', 'dy']);

  const attentionShape = (kernelName: string, qkv: tf.TensorInfo, attrs: Record<string, number>) => {
    const { batch, tokens, heads, queries } = attrs;
    const [rows, columns] = qkv.shape;
    if (qkv.dtype !== 'float32' || qkv.shape.length !== 2 || rows !== batch * tokens || columns % (3 * heads) !== 0 || !(queries === 1 || queries === tokens)) {
      throw new Error(`${kernelName}: qkv is ${qkv.dtype} [${qkv.shape}] with ${queries} queries, expected float32 [${batch} x ${tokens}, 3 x ${heads} heads x headDim] and 1 or ${tokens} queries`);
    }
    return { batch, tokens, heads, queries, headDim: columns / 3 / heads, width: columns / 3 };
  };
  register(ATTENTION, (b, { qkv }, attrs) => {
    const { batch, tokens, heads, queries, headDim, width } = attentionShape(ATTENTION, qkv!, attrs);
    const out = b.makeOutput([batch * queries, width], 'float32');
    const probabilities = b.makeOutput([batch, heads, queries, tokens], 'float32');
    if (batch * tokens * width > 0) runner.run(4, [offset(b, qkv!), offset(b, out), offset(b, probabilities), tokens, heads, headDim, queries], batch, batch * heads * queries * tokens * headDim * 2);
    return [out, probabilities];
  });
  register(ATTENTION_GRAD, (b, { qkv, probabilities, dy }, attrs) => {
    const { batch, tokens, heads, queries, headDim, width } = attentionShape(ATTENTION_GRAD, qkv!, attrs);
    if (probabilities!.shape.join() !== [batch, heads, queries, tokens].join() || dy!.shape.join() !== [batch * queries, width].join()) {
      throw new Error(`${ATTENTION_GRAD}: probabilities [${probabilities!.shape}] and dy [${dy!.shape}] do not fit qkv [${qkv!.shape}]`);
    }
    const out = b.makeOutput([batch * tokens, 3 * width], 'float32');
    // The kernel's scratch: each query's softmax gradient row, P's size, freed on return.
    const scratch = b.makeOutput([batch, heads, queries, tokens], 'float32');
    try {
      if (batch * tokens * width > 0) runner.run(5, [offset(b, qkv!), offset(b, probabilities!), offset(b, dy!), offset(b, out), offset(b, scratch), tokens, heads, headDim, queries], batch, batch * heads * queries * tokens * headDim * 5);
    } finally {
      b.disposeData(scratch.dataId);
    }
    return out;
  });

  register(NORMALIZE, (b, { x }, attrs) => {
    if (x!.dtype !== 'float32' || x!.shape.length < 1) throw new Error(`${NORMALIZE}: expected a float32 tensor, got ${x!.dtype} [${x!.shape}]`);
    const columns = x!.shape[x!.shape.length - 1];
    const rows = tf.util.sizeFromShape(x!.shape) / Math.max(1, columns);
    const normalized = b.makeOutput([...x!.shape], 'float32');
    const rstd = b.makeOutput([...x!.shape.slice(0, -1), 1], 'float32');
    if (rows * columns > 0) runner.run(6, [offset(b, x!), offset(b, normalized), offset(b, rstd), columns, float32Bits(attrs.eps)], rows, rows * columns * 8);
    return [normalized, rstd];
  });
  register(NORMALIZE_GRAD, (b, { xhat, rstd, dy }) => {
    const columns = xhat!.shape[xhat!.shape.length - 1];
    const rows = tf.util.sizeFromShape(xhat!.shape) / Math.max(1, columns);
    if (dy!.shape.join() !== xhat!.shape.join() || tf.util.sizeFromShape(rstd!.shape) !== rows) throw new Error(`${NORMALIZE_GRAD}: xhat [${xhat!.shape}], rstd [${rstd!.shape}] and dy [${dy!.shape}] do not fit`);
    const out = b.makeOutput([...xhat!.shape], 'float32');
    if (rows * columns > 0) runner.run(7, [offset(b, xhat!), offset(b, rstd!), offset(b, dy!), offset(b, out), columns], rows, rows * columns * 8);
    return out;
  });

  /** A LayerNorm operand's rows and columns, checked against the scale's length (and dy's shape). */
  const layerNormShape = (kernelName: string, x: tf.TensorInfo, weight: tf.TensorInfo | undefined, dy?: tf.TensorInfo) => {
    const columns = x.shape[x.shape.length - 1] ?? 0;
    const rows = tf.util.sizeFromShape(x.shape) / Math.max(1, columns);
    if (x.dtype !== 'float32' || x.shape.length < 1 || (weight && weight.shape.join() !== String(columns)) || (dy && dy.shape.join() !== x.shape.join())) {
      throw new Error(`${kernelName}: x ${x.dtype} [${x.shape}]${weight ? `, weight [${weight.shape}]` : ''}${dy ? `, dy [${dy.shape}]` : ''}: expected float32 x [..., C], weight [C] and dy of x's shape`);
    }
    return { rows, columns };
  };
  register(LAYER_NORM, (b, { x, weight, bias }, attrs) => {
    const { rows, columns } = layerNormShape(LAYER_NORM, x!, weight);
    if (bias!.shape.join() !== String(columns)) throw new Error(`${LAYER_NORM}: bias [${bias!.shape}], expected [${columns}]`);
    const out = b.makeOutput([...x!.shape], 'float32');
    if (rows * columns > 0) runner.run(11, [offset(b, x!), offset(b, weight!), offset(b, bias!), offset(b, out), columns, float32Bits(attrs.eps)], rows, rows * columns * 10);
    return out;
  });
  register(LAYER_NORM_GRAD, (b, { x, weight, dy }, attrs) => {
    const { rows, columns } = layerNormShape(LAYER_NORM_GRAD, x!, weight, dy);
    const out = b.makeOutput([...x!.shape], 'float32');
    if (rows * columns > 0) runner.run(12, [offset(b, x!), offset(b, weight!), offset(b, dy!), offset(b, out), columns, float32Bits(attrs.eps)], rows, rows * columns * 16);
    return out;
  });
  register(LAYER_NORM_WEIGHT_GRAD, (b, { x, dy }, attrs) => {
    const { rows, columns } = layerNormShape(LAYER_NORM_WEIGHT_GRAD, x!, undefined, dy);
    const out = b.makeOutput([columns], 'float32');
    // Every output column sums over all rows: one thread (work 0 never splits).
    if (columns > 0) runner.run(13, [offset(b, x!), offset(b, dy!), offset(b, out), rows, columns, float32Bits(attrs.eps)], columns, 0);
    return out;
  });

  // Optimizer updates: the variable and its slots, one pass.
  elementwise(SGD_UPDATE, 8, ['variable', 'gradient', 'buffer'], 2, (a) => [a.lr, a.momentum, a.weightDecay]);
  elementwise(ADAMW_UPDATE, 9, ['variable', 'gradient', 'm', 'v'], 3, (a) => [a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, a.keep, a.sqrtCorrection2, a.eps, a.stepSize]);
  elementwise(EMA_UPDATE, 10, ['average', 'value'], 1, (a) => [a.momentum, 1 - a.momentum]);
  installed = { threads: control ? 2 : 1 };
  return { installed: true, ...installed };
}
