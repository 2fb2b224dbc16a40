// Worker thread side of TransformPool: applies one transform to the images it is sent and returns
// them normalised as float32 RGB (the buffer is transferred, not copied). Same code and seeds as
// on the main thread, so the pixels are identical.

import { parentPort, workerData } from 'worker_threads';
import { createRandom } from '../../common/random';
import { Transform, TransformSpec } from './transforms';

export interface TransformJob {
  readonly id: number;
  readonly pixels: Uint8Array;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly seed: readonly number[];
}

export type TransformReply =
  | { readonly id: number; readonly height: number; readonly width: number; readonly data: Float32Array }
  | { readonly id: number; readonly error: string };

if (parentPort) {
  const port = parentPort;
  const transform = new Transform(workerData as TransformSpec);
  port.on('message', (job: TransformJob) => {
    try {
      const image = transform.apply(job, createRandom(...job.seed));
      const data = new Float32Array(image.height * image.width * 3);
      transform.writeNormalized(image, data, 0);
      const reply: TransformReply = { id: job.id, height: image.height, width: image.width, data };
      port.postMessage(reply, [data.buffer]);
    } catch (error) {
      port.postMessage({ id: job.id, error: (error as Error).message } satisfies TransformReply);
    }
  });
}
