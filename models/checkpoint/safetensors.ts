// Reader and writer for the safetensors format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}} with optional __metadata__, then raw little-endian
// data. Headers are untrusted input: every length, offset and shape is checked against the file
// before a byte of tensor data is allocated, so a lying header cannot exhaust memory.

import * as fs from 'fs';
import { parseStrictJson } from './strictJson';
import { writeAtomically, writeFileAtomic } from '../../common/atomicWrite';

export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data section. */
  readonly begin: number;
  readonly end: number;
}

/** Every problem with a safetensors file, naming the file and (where there is one) the tensor. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    readonly detail: string,
  ) {
    super(`${file}: ${key === undefined ? '' : `tensor '${key}': `}${detail}`);
    this.name = 'SafetensorsError';
  }
}

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, value);
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dimension) => product * dimension, 1);
}

interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Buffer;
  close(): void;
}

function fileSource(path: string): ByteSource {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new SafetensorsError(path, undefined, code === 'ENOENT' ? 'no such file' : `cannot open (${code ?? String(error)})`);
  }
  const size = fs.fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      const buffer = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, buffer, done, length - done, offset + done);
        if (n === 0) throw new SafetensorsError(path, undefined, `file ended while reading ${length} bytes at offset ${offset}`);
        done += n;
      }
      return buffer;
    },
    close() {
      fs.closeSync(fd);
    },
  };
}

function bufferSource(buffer: Uint8Array): ByteSource {
  const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return {
    size: bytes.length,
    read: (offset, length) => bytes.subarray(offset, offset + length),
    close: () => undefined,
  };
}

function parseHeader(label: string, source: ByteSource): { tensors: Map<string, TensorInfo>; metadata: Record<string, string>; dataStart: number } {
  if (source.size < 8) throw new SafetensorsError(label, undefined, `file is ${source.size} bytes, shorter than the 8-byte header length`);
  const start = source.read(0, 8);
  const headerLength64 = start.readBigUInt64LE(0);
  if (headerLength64 > BigInt(source.size - 8)) {
    const pickled = (start[0] === 0x50 && start[1] === 0x4b) || (start[0] === 0x80 && start[1] >= 2 && start[1] <= 5);
    if (pickled) {
      throw new SafetensorsError(
        label,
        undefined,
        'looks like a PyTorch pickle (.pth/.pt/.bin), which can run code when loaded; vitpeft reads only safetensors. ' +
          "Convert it where you trust it: python -c \"import torch, safetensors.torch as s; s.save_file(torch.load('IN', weights_only=True), 'OUT.safetensors')\"",
      );
    }
    throw new SafetensorsError(label, undefined, `header length ${headerLength64} runs past the end of the file (${source.size} bytes); the file is truncated or not safetensors`);
  }
  const headerLength = Number(headerLength64);
  if (headerLength > MAX_HEADER_BYTES) throw new SafetensorsError(label, undefined, `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (headerLength < 2) throw new SafetensorsError(label, undefined, `header length ${headerLength} is too short for a JSON object`);
  const headerText = source.read(8, headerLength).toString('utf8');
  let header: unknown;
  try {
    header = parseStrictJson(headerText);
  } catch (error) {
    throw new SafetensorsError(label, undefined, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(label, undefined, 'header must be a JSON object of tensors');
  }
  const dataStart = 8 + headerLength;
  const dataSize = source.size - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new SafetensorsError(label, '__metadata__', 'must be an object of strings');
      }
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') throw new SafetensorsError(label, '__metadata__', `value of '${key}' must be a string, got ${typeof value}`);
        metadata[key] = value;
      }
      continue;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new SafetensorsError(label, name, 'entry must be an object with dtype, shape and data_offsets');
    }
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    const extra = Object.keys(entry).filter((key) => !['dtype', 'shape', 'data_offsets'].includes(key));
    if (extra.length > 0) throw new SafetensorsError(label, name, `unexpected field '${extra[0]}' (expected dtype, shape, data_offsets)`);
    if (!isDtype(dtype)) {
      throw new SafetensorsError(label, name, `unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new SafetensorsError(label, name, `shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      throw new SafetensorsError(label, name, `data_offsets ${JSON.stringify(offsets)} must be [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataSize) {
      throw new SafetensorsError(label, name, `data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes)`);
    }
    const count = elementCount(shape as number[]);
    const expectedBytes = count * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(expectedBytes) || expectedBytes !== end - begin) {
      throw new SafetensorsError(
        label,
        name,
        `shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${expectedBytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    tensors.set(name, { name, dtype, shape: shape as number[], begin, end });
  }
  const ordered = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const info of ordered) {
    if (info.begin < covered) throw new SafetensorsError(label, info.name, `data_offsets [${info.begin}, ${info.end}] overlap another tensor's bytes`);
    if (info.begin > covered) throw new SafetensorsError(label, info.name, `bytes ${covered}..${info.begin} of the data section belong to no tensor`);
    covered = info.end;
  }
  if (covered !== dataSize) {
    throw new SafetensorsError(label, undefined, `data section is ${dataSize} bytes but tensors cover ${covered}; the file has trailing bytes`);
  }
  return { tensors, metadata, dataStart };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** A safetensors file opened for reading; tensor bytes are read on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly source: ByteSource,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
    private readonly dataStart: number,
  ) {}

  static open(path: string): SafetensorsFile {
    const source = fileSource(path);
    try {
      const { tensors, metadata, dataStart } = parseHeader(path, source);
      return new SafetensorsFile(path, source, tensors, metadata, dataStart);
    } catch (error) {
      source.close();
      throw error;
    }
  }

  static fromBuffer(buffer: Uint8Array, label = '<buffer>'): SafetensorsFile {
    const source = bufferSource(buffer);
    const { tensors, metadata, dataStart } = parseHeader(label, source);
    return new SafetensorsFile(label, source, tensors, metadata, dataStart);
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(this.path, name, 'missing from the file');
    return info;
  }

  /** The tensor's raw little-endian bytes. */
  readBytes(name: string): Buffer {
    const info = this.info(name);
    return this.source.read(this.dataStart + info.begin, info.end - info.begin);
  }

  /** Any floating or integer tensor as float32 (F16 and BF16 widened exactly). */
  readFloat32(name: string): Float32Array {
    const info = this.info(name);
    const bytes = this.readBytes(name);
    const count = elementCount(info.shape);
    const out = new Float32Array(count);
    switch (info.dtype) {
      case 'F32':
        bytes.copy(Buffer.from(out.buffer));
        return out;
      case 'F64':
        for (let i = 0; i < count; i++) out[i] = bytes.readDoubleLE(i * 8);
        return out;
      case 'F16':
        for (let i = 0; i < count; i++) out[i] = halfToFloat(bytes.readUInt16LE(i * 2));
        return out;
      case 'BF16': {
        const widened = new Uint32Array(out.buffer);
        for (let i = 0; i < count; i++) widened[i] = bytes.readUInt16LE(i * 2) << 16;
        return out;
      }
      default: {
        const ints = this.readInt32(name);
        for (let i = 0; i < count; i++) out[i] = ints[i];
        return out;
      }
    }
  }

  /** An integer tensor as int32; refuses floats and values outside the int32 range. */
  readInt32(name: string): Int32Array {
    const info = this.info(name);
    const bytes = this.readBytes(name);
    const count = elementCount(info.shape);
    const out = new Int32Array(count);
    const width = DTYPE_BYTES[info.dtype];
    for (let i = 0; i < count; i++) {
      let value: number | bigint;
      switch (info.dtype) {
        case 'I64':
          value = bytes.readBigInt64LE(i * width);
          break;
        case 'U64':
          value = bytes.readBigUInt64LE(i * width);
          break;
        case 'I32':
          value = bytes.readInt32LE(i * width);
          break;
        case 'U32':
          value = bytes.readUInt32LE(i * width);
          break;
        case 'I16':
          value = bytes.readInt16LE(i * width);
          break;
        case 'U16':
          value = bytes.readUInt16LE(i * width);
          break;
        case 'I8':
          value = bytes.readInt8(i);
          break;
        case 'U8':
        case 'BOOL':
          value = bytes[i];
          break;
        default:
          throw new SafetensorsError(this.path, name, `dtype ${info.dtype} is not an integer type`);
      }
      if (value > 2147483647 || value < -2147483648) {
        throw new SafetensorsError(this.path, name, `value ${value} at index ${i} does not fit in int32`);
      }
      out[i] = Number(value);
    }
    return out;
  }

  /** A U8 tensor's bytes (images). */
  readUint8(name: string): Uint8Array {
    const info = this.info(name);
    if (info.dtype !== 'U8') throw new SafetensorsError(this.path, name, `expected dtype U8, got ${info.dtype}`);
    return new Uint8Array(this.readBytes(name));
  }

  close(): void {
    this.source.close();
  }
}

export type WritableTensor =
  | { dtype: 'F32'; shape: readonly number[]; data: Float32Array }
  | { dtype: 'I32'; shape: readonly number[]; data: Int32Array }
  | { dtype: 'I64'; shape: readonly number[]; data: BigInt64Array }
  | { dtype: 'U8'; shape: readonly number[]; data: Uint8Array };

const TYPED_DTYPE = { F32: 4, I32: 4, I64: 8, U8: 1 } as const;

/** The 8-byte length and the JSON header (padded with spaces to 8-byte alignment) for tensors in this order. */
function headerBytes(entries: ReadonlyArray<readonly [string, { dtype: WritableTensor['dtype']; shape: readonly number[] }]>, metadata: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, tensor] of entries) {
    if (name === '__metadata__') throw new Error("a tensor cannot be named '__metadata__'");
    if (Object.prototype.hasOwnProperty.call(header, name)) throw new Error(`tensor '${name}' given twice`);
    const bytes = elementCount(tensor.shape) * TYPED_DTYPE[tensor.dtype];
    header[name] = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerText = JSON.stringify(header);
  const padding = (8 - (Buffer.byteLength(headerText) % 8)) % 8;
  headerText += ' '.repeat(padding);
  const text = Buffer.from(headerText, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([length, text]);
}

function tensorBytes(name: string, tensor: WritableTensor): Buffer {
  const count = elementCount(tensor.shape);
  if (count !== tensor.data.length) {
    throw new Error(`tensor '${name}': shape [${tensor.shape.join(', ')}] has ${count} elements but its data has ${tensor.data.length}`);
  }
  return Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
}

/** Serialises tensors in the given order; the header is padded with spaces to 8-byte alignment. */
export function serializeSafetensors(
  tensors: Iterable<readonly [string, WritableTensor]>,
  metadata: Record<string, string> = {},
): Buffer {
  const entries = [...tensors];
  const chunks = entries.map(([name, tensor]) => tensorBytes(name, tensor));
  return Buffer.concat([headerBytes(entries, metadata), ...chunks]);
}

/** Writes a safetensors file atomically: a temporary file in the same folder, then a rename. */
export function writeSafetensors(
  path: string,
  tensors: Iterable<readonly [string, WritableTensor]>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

/** A tensor whose data is produced only when it is written. */
export interface LazyTensor {
  readonly dtype: WritableTensor['dtype'];
  readonly shape: readonly number[];
  data(): WritableTensor['data'];
}

/**
 * Writes a safetensors file atomically, asking each tensor for its data only when its turn comes,
 * so at most one tensor's bytes are in memory (a training checkpoint of a whole ViT-B is 700 MB).
 */
export function writeSafetensorsStreaming(
  path: string,
  tensors: ReadonlyArray<readonly [string, LazyTensor]>,
  metadata: Record<string, string> = {},
): void {
  const header = headerBytes(tensors, metadata);
  writeAtomically(path, (fd) => {
    fs.writeSync(fd, header);
    for (const [name, lazy] of tensors) {
      const data = lazy.data();
      const tensor = { dtype: lazy.dtype, shape: lazy.shape, data } as WritableTensor;
      if (data.BYTES_PER_ELEMENT !== TYPED_DTYPE[lazy.dtype]) throw new Error(`tensor '${name}': ${lazy.dtype} data given as ${data.constructor.name}`);
      const bytes = tensorBytes(name, tensor);
      let written = 0;
      while (written < bytes.length) written += fs.writeSync(fd, bytes, written, bytes.length - written);
    }
  });
}
