// Feature rows kept outside the compute heap, so that a k-NN bank can be larger than the
// backend's memory: rows are copied out of each batch's tensor into fixed-size blocks of float32
// (or float16, half the bytes) in JS memory, and once the blocks there would pass a memory budget,
// further blocks go to a file (under the run folder) and are read back one block at a time. A
// consumer walks the blocks in order, as float32; only one is ever materialised as a tensor.

import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { float16 } from './float16';

export interface FeatureStoreOptions {
  /** Rows per block (the k-NN bank chunk). */
  readonly blockRows?: number;
  /** Bytes of blocks kept in JS memory before further ones go to a file (default: unlimited). */
  readonly memoryBudgetBytes?: number;
  /** Folder for the file of blocks past the budget (needed when a budget is given). */
  readonly spillDir?: string;
  /** How values are kept: float32 (the default) or float16 (rounded to nearest; half the memory and file). */
  readonly precision?: FeaturePrecision;
}

export type FeaturePrecision = 'float32' | 'float16';

const DEFAULT_BLOCK_ROWS = 4096;
let spillCount = 0;

export class FeatureStore {
  readonly blockRows: number;
  readonly precision: FeaturePrecision;
  private readonly memoryBlocks: Array<Float32Array | Uint16Array> = [];
  private fileBlocks = 0;
  private file?: string;
  private fd?: number;
  /** The block being filled (always in memory, as float32; at float16 its values are already rounded). */
  private current: Float32Array;
  private filled = 0;
  private total = 0;

  constructor(
    readonly width: number,
    private readonly options: FeatureStoreOptions = {},
  ) {
    this.blockRows = options.blockRows ?? DEFAULT_BLOCK_ROWS;
    if (!(Number.isInteger(this.blockRows) && this.blockRows > 0)) throw new Error(`feature store: blockRows must be a positive integer, got ${this.blockRows}`);
    if (options.memoryBudgetBytes !== undefined && !options.spillDir) throw new Error('feature store: a memory budget needs a spillDir for the blocks past it');
    this.precision = options.precision ?? 'float32';
    if (this.precision !== 'float32' && this.precision !== 'float16') throw new Error(`feature store: precision must be float32 or float16, got ${String(this.precision)}`);
    this.current = new Float32Array(this.blockRows * width);
  }

  get rows(): number {
    return this.total;
  }

  /** Blocks written to the file so far (0 while everything fits the budget). */
  get spilledBlocks(): number {
    return this.fileBlocks;
  }

  get blockCount(): number {
    return this.memoryBlocks.length + this.fileBlocks + (this.filled > 0 ? 1 : 0);
  }

  /** Appends rows [n, width] (a tensor is read and left to the caller to dispose). */
  append(rows: tf.Tensor2D | Float32Array): void {
    const values = rows instanceof Float32Array ? rows : (rows.dataSync() as Float32Array);
    if (values.length % this.width !== 0) throw new Error(`feature store: ${values.length} values are not rows of width ${this.width}`);
    let offset = 0;
    while (offset < values.length) {
      const take = Math.min(values.length - offset, (this.blockRows - this.filled) * this.width);
      const slice = values.subarray(offset, offset + take);
      this.current.set(this.precision === 'float16' ? float16.decode(float16.encode(slice)) : slice, this.filled * this.width);
      this.filled += take / this.width;
      offset += take;
      if (this.filled === this.blockRows) this.seal();
    }
    this.total += values.length / this.width;
  }

  /** Block i's rows (the last block may be shorter); a file block, or a float16 one, is read into a fresh array. */
  block(index: number): Float32Array {
    if (index < this.memoryBlocks.length) {
      const kept = this.memoryBlocks[index];
      return kept instanceof Float32Array ? kept : float16.decode(kept);
    }
    const inFile = index - this.memoryBlocks.length;
    if (inFile < this.fileBlocks) {
      const bytes = this.blockBytes;
      const buffer = Buffer.alloc(bytes);
      const read = fs.readSync(this.fd!, buffer, 0, bytes, inFile * bytes);
      if (read !== bytes) throw new Error(`feature store: ${this.file} ended early reading block ${index}`);
      if (this.precision === 'float16') return float16.decode(new Uint16Array(buffer.buffer, buffer.byteOffset, bytes / 2));
      return new Float32Array(buffer.buffer, buffer.byteOffset, bytes / 4);
    }
    if (index === this.blockCount - 1 && this.filled > 0) return this.current.subarray(0, this.filled * this.width);
    throw new Error(`feature store: no block ${index} (there are ${this.blockCount})`);
  }

  /** Frees the memory and deletes the file. */
  dispose(): void {
    this.memoryBlocks.length = 0;
    if (this.fd !== undefined) fs.closeSync(this.fd);
    if (this.file) fs.rmSync(this.file, { force: true });
    this.fd = undefined;
    this.file = undefined;
    this.fileBlocks = 0;
  }

  /** Bytes of one whole block as kept. */
  private get blockBytes(): number {
    return this.blockRows * this.width * (this.precision === 'float16' ? 2 : 4);
  }

  private seal(): void {
    const budget = this.options.memoryBudgetBytes ?? Infinity;
    const { blockBytes } = this;
    const sealed = this.precision === 'float16' ? float16.encode(this.current) : this.current;
    if (this.fileBlocks === 0 && (this.memoryBlocks.length + 1) * blockBytes <= budget) {
      this.memoryBlocks.push(sealed);
      if (sealed === this.current) this.current = new Float32Array(this.blockRows * this.width);
    } else {
      if (this.fd === undefined) {
        fs.mkdirSync(this.options.spillDir!, { recursive: true });
        this.file = path.join(this.options.spillDir!, `features-${process.pid}-${++spillCount}.${this.precision === 'float16' ? 'f16' : 'f32'}`);
        this.fd = fs.openSync(this.file, 'w+');
      }
      fs.writeSync(this.fd, sealed, 0, blockBytes, this.fileBlocks * blockBytes);
      this.fileBlocks++;
    }
    this.filled = 0;
  }
}
