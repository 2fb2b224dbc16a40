// Kernels of the wasm backend replaced by equivalents that move less memory. Each computes exactly
// what the stock kernel computes; they are installed once the wasm backend has started.
//
// - Identity, and Cast to the dtype the tensor already has, share the input's buffer instead of
//   copying it. The gradient tape keeps every tensor it saves for the backward pass as a clone made
//   by Identity, and the gradient of that clone is a float32 -> float32 Cast: the stock kernels
//   copied the saved activations twice per training step (measured on the reference shape: ~770
//   Identity and ~180 Cast calls, ~0.3 s of a step, and memory held until the step ended). tfjs's
//   cpu backend and the wasm Reshape kernel share buffers the same way (reference-counted through
//   incRef). It is safe because tensors are immutable: wasm kernels write only into buffers they
//   allocate for their outputs, and Variable.assign points a variable at a new buffer.
// - Slice and SplitV copy the selected runs inside the wasm heap (copyWithin). The stock kernels
//   first copy the whole input out of the heap into a fresh JavaScript array (readSync) and then
//   copy each row with its own typed-array view: splitting the reference shape's fused qkv output
//   in three took ~20 ms, against ~1 ms for a transpose of the same tensor.

import * as tf from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm used here. */
interface WasmBackendLike {
  incRef(dataId: object): void;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  wasm: { HEAPU8: Uint8Array };
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** The input itself, under a new reference (its buffer is freed when the last reference goes). */
function shareInput({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const x = inputs.x as tf.TensorInfo;
  (backend as unknown as WasmBackendLike).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * x[begin : begin + size] as a new tensor, copied run by run within the heap. A run is the
 * longest stretch that is contiguous in both tensors: the last axis taken partly, together with
 * every axis after it (those are taken whole).
 */
function sliceInHeap(backend: WasmBackendLike, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const count = size.reduce((product, n) => product * n, 1);
  if (count === 0) return out;
  const bytes = tf.util.bytesPerElement(x.dtype);
  const rank = x.shape.length;
  // Axes from `inner` on form one contiguous run in x.
  let inner = rank - 1;
  while (inner > 0 && begin[inner] === 0 && size[inner] === x.shape[inner]) inner--;
  const run = size.slice(inner).reduce((product, n) => product * n, 1);
  const strides = tf.util.computeStrides(x.shape);
  const heap = backend.wasm.HEAPU8; // read after makeOutput: allocating may grow the heap
  const source = backend.dataIdMap.get(x.dataId).memoryOffset;
  const target = backend.dataIdMap.get(out.dataId).memoryOffset;
  const index = new Array<number>(inner).fill(0); // position among the runs, axes 0 .. inner-1
  for (let copied = 0; copied < count; copied += run) {
    let offset = begin[inner] * (inner < rank - 1 ? strides[inner] : 1);
    for (let axis = 0; axis < inner; axis++) offset += (begin[axis] + index[axis]) * strides[axis];
    heap.copyWithin(target + copied * bytes, source + offset * bytes, source + (offset + run) * bytes);
    for (let axis = inner - 1; axis >= 0; axis--) {
      if (++index[axis] < size[axis]) break;
      index[axis] = 0;
    }
  }
  return out;
}

function replaceKernel(config: tf.KernelConfig): void {
  tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
}

let registered = false;

/** Installs the kernels above for the 'wasm' backend (idempotent). */
export function registerWasmKernelOverrides(): void {
  if (registered) return;
  const stock = Object.fromEntries([tf.Identity, tf.Cast, tf.Slice, tf.SplitV].map((name) => [name, tf.getKernel(name, 'wasm')]));
  const missing = Object.keys(stock).filter((name) => !stock[name]);
  if (missing.length > 0) throw new Error(`the 'wasm' backend has no ${missing.join(', ')} kernel to replace`);
  registered = true;
  const stockCast = stock[tf.Cast]!.kernelFunc;
  const stockSlice = stock[tf.Slice]!.kernelFunc;
  const stockSplit = stock[tf.SplitV]!.kernelFunc;
  replaceKernel({ kernelName: tf.Identity, backendName: 'wasm', kernelFunc: shareInput });
  replaceKernel({
    kernelName: tf.Cast,
    backendName: 'wasm',
    kernelFunc: (args: KernelArgs) => ((args.inputs.x as tf.TensorInfo).dtype === (args.attrs as unknown as tf.CastAttrs).dtype ? shareInput(args) : stockCast(args)),
  });
  replaceKernel({
    kernelName: tf.Slice,
    backendName: 'wasm',
    kernelFunc: (args: KernelArgs) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === 'string') return stockSlice(args);
      const { begin, size } = args.attrs as unknown as tf.SliceAttrs;
      const [start, extent] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
      return sliceInHeap(args.backend as unknown as WasmBackendLike, x, start, extent);
    },
  });
  replaceKernel({
    kernelName: tf.SplitV,
    backendName: 'wasm',
    kernelFunc: (args: KernelArgs) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === 'string') return stockSplit(args);
      const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
      const along = tf.util.parseAxisParam(axis, x.shape)[0];
      const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, along);
      const begin = new Array<number>(x.shape.length).fill(0);
      return sizes.map((part) => {
        const extent = [...x.shape];
        extent[along] = part;
        const piece = sliceInHeap(args.backend as unknown as WasmBackendLike, x, begin, extent);
        begin[along] += part;
        return piece;
      });
    },
  });
}
