// Feature rows kept outside the compute heap, so that a k-NN bank can be larger than the
// backend's memory: rows are copied out of each batch's tensor into fixed-size blocks of float32
// in JS memory, and once the blocks there would pass a memory budget, further blocks go to a
// file (under the run folder) and are read back one block at a time. A consumer walks the blocks
// in order; only one is ever materialised as a tensor.

import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';

export interface FeatureStoreOptions {
  /** Rows per block (the k-NN bank chunk). */
  readonly blockRows?: number;
  /** Bytes of blocks kept in JS memory before further ones go to a file (default: unlimited). */
  readonly memoryBudgetBytes?: number;
  /** Folder for the file of blocks past the budget (needed when a budget is given). */
  readonly spillDir?: string;
}

const DEFAULT_BLOCK_ROWS = 4096;
let spillCount = 0;

export class FeatureStore {
  readonly blockRows: number;
  private readonly memoryBlocks: Float32Array[] = [];
  private fileBlocks = 0;
  private file?: string;
  private fd?: number;
  /** The block being filled (always in memory). */
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
      this.current.set(values.subarray(offset, offset + take), this.filled * this.width);
      this.filled += take / this.width;
      offset += take;
      if (this.filled === this.blockRows) this.seal();
    }
    this.total += values.length / this.width;
  }

  /** Block i's rows (the last block may be shorter); a file block is read into a fresh array. */
  block(index: number): Float32Array {
    if (index < this.memoryBlocks.length) return this.memoryBlocks[index];
    const inFile = index - this.memoryBlocks.length;
    if (inFile < this.fileBlocks) {
      const bytes = this.blockRows * this.width * 4;
      const buffer = Buffer.alloc(bytes);
      const read = fs.readSync(this.fd!, buffer, 0, bytes, inFile * bytes);
      if (read !== bytes) throw new Error(`feature store: ${this.file} ended early reading block ${index}`);
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

  private seal(): void {
    const budget = this.options.memoryBudgetBytes ?? Infinity;
    const blockBytes = this.blockRows * this.width * 4;
    if (this.fileBlocks === 0 && (this.memoryBlocks.length + 1) * blockBytes <= budget) {
      this.memoryBlocks.push(this.current);
      this.current = new Float32Array(this.blockRows * this.width);
    } else {
      if (this.fd === undefined) {
        fs.mkdirSync(this.options.spillDir!, { recursive: true });
        this.file = path.join(this.options.spillDir!, `features-${process.pid}-${++spillCount}.f32`);
        this.fd = fs.openSync(this.file, 'w+');
      }
      fs.writeSync(this.fd, this.current, 0, blockBytes, this.fileBlocks * blockBytes);
      this.fileBlocks++;
    }
    this.filled = 0;
  }
}
