// Worker threads that run the per-image transform in parallel (opt-in: batches({ workers: N })).
// Decoding already runs off the main thread (sharp); this moves the resampling and normalisation
// there too, so large images (the DINO k-NN transform on ImageNet) scale with the cores. Each job
// gets a copy of exactly the image's bytes (never the whole buffer a view points into) and
// returns a transferred float32 buffer.

import * as path from 'path';
import { Worker } from 'worker_threads';
import { RawImage } from './resample';
import { Transform } from './transforms';
import type { TransformJob, TransformReply } from './transformWorker';

interface Pending {
  resolve: (result: { height: number; width: number; data: Float32Array }) => void;
  reject: (error: Error) => void;
  worker: number;
}

export class TransformPool {
  private readonly workers: Worker[];
  private readonly load: number[];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  constructor(transform: Transform, size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`TransformPool: size must be a positive integer, got ${size}`);
    const spec = { name: undefined, steps: transform.steps, mean: transform.mean, std: transform.std };
    const script = path.join(__dirname, 'transformWorker.js');
    this.workers = Array.from({ length: size }, (_, index) => {
      const worker = new Worker(script, { workerData: spec });
      worker.unref();
      worker.on('message', (reply: TransformReply) => this.settle(reply));
      worker.on('error', (error) => this.failWorker(index, error));
      worker.on('exit', (code) => {
        if (!this.closed) this.failWorker(index, new Error(`transform worker ${index} exited with code ${code}`));
      });
      return worker;
    });
    this.load = new Array(size).fill(0);
  }

  /** Transforms one image with the random stream createRandom(...seed); normalised float32 RGB HWC. */
  run(image: RawImage, seed: readonly number[]): Promise<{ height: number; width: number; data: Float32Array }> {
    if (this.closed) return Promise.reject(new Error('TransformPool: closed'));
    let worker = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i] < this.load[worker]) worker = i;
    const id = this.nextId++;
    const pixels = image.pixels.slice(); // only this image's bytes, transferable
    const job: TransformJob = { id, pixels, height: image.height, width: image.width, channels: image.channels, seed };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker });
      this.load[worker]++;
      this.workers[worker].postMessage(job, [pixels.buffer]);
    });
  }

  private settle(reply: TransformReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    this.load[pending.worker]--;
    if ('error' in reply) pending.reject(new Error(reply.error));
    else pending.resolve({ height: reply.height, width: reply.width, data: reply.data });
  }

  private failWorker(index: number, error: Error): void {
    for (const [id, pending] of this.pending) {
      if (pending.worker !== index) continue;
      this.pending.delete(id);
      pending.reject(error);
    }
  }

  /** Stops the workers; jobs still running are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(new Error('TransformPool: closed'));
    }
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
