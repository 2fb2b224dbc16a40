// A DINO session's resumable state as one safetensors file: the student and the teacher (backbone
// and head) as student/<name> and teacher/<name>, the centre, both optimizers' slots as
// optimizer/<slot>/<name>, and in __metadata__ the completed steps (with the batch seed they fix
// the data order and every view), the optimizers' step counts and the caller's JSON record. As
// the supervised training state: only safetensors, every tensor checked before anything is assigned.

import * as tf from '@tensorflow/tfjs-core';
import { LocatedError } from '../../../common/errors';
import { LazyTensor, SafetensorsFile, writeSafetensorsStreaming } from '../../../models/checkpoint/safetensors';
import { parseStrictJson } from '../../../models/checkpoint/strictJson';
import type { DinoSession } from './session';

export const DINO_STATE_FORMAT = 'vitpeft-dino-state/1';
const METADATA_KEY = 'vitpeft.dino_state';

export class DinoStateError extends LocatedError {}

export interface DinoStateHeader {
  readonly step: number;
  readonly optimizerSteps: readonly [number, number];
  readonly batchSeed: number;
  readonly extra: unknown;
}

function lazy(tensor: tf.Tensor): LazyTensor {
  return { dtype: 'F32', shape: tensor.shape, data: () => tensor.dataSync() as Float32Array };
}

/** A tensor of the state: its name in the file, and for an optimizer slot which optimizer and key. */
interface StateEntry {
  readonly name: string;
  readonly tensor: tf.Tensor;
  readonly slot?: { readonly optimizer: 0 | 1; readonly key: string };
}

/** Every tensor of the state, in file order. */
function stateEntries(session: DinoSession): StateEntry[] {
  const { models } = session.job;
  const entries: StateEntry[] = [
    ...models.studentParameters().map(([name, tensor]) => ({ name: `student/${name}`, tensor })),
    ...models.teacherParameters().map(([name, tensor]) => ({ name: `teacher/${name}`, tensor })),
    { name: 'center', tensor: session.center },
  ];
  const bodyCount = session.names.length - models.studentHead.lastLayer.length;
  [session.optimizer, session.lastLayerOptimizer].forEach((optimizer, which) => {
    for (const [key, tensor] of optimizer.getState().tensors) {
      const match = /^(.+)\.(\d+)$/.exec(key)!;
      const name = session.names[(which === 0 ? 0 : bodyCount) + Number(match[2])];
      entries.push({ name: `optimizer/${match[1]}/${name}`, tensor, slot: { optimizer: which as 0 | 1, key } });
    }
  });
  return entries;
}

export function saveDinoState(file: string, session: DinoSession, extra: unknown): void {
  const header: DinoStateHeader = {
    step: session.completedSteps,
    optimizerSteps: [session.optimizer.getState().step, session.lastLayerOptimizer.getState().step],
    batchSeed: session.job.train.seed,
    extra,
  };
  writeSafetensorsStreaming(file, stateEntries(session).map(({ name, tensor }) => [name, lazy(tensor)] as const), { format: DINO_STATE_FORMAT, [METADATA_KEY]: JSON.stringify(header) });
}

export class DinoStateFile {
  private constructor(
    readonly file: string,
    private readonly contents: SafetensorsFile,
    readonly header: DinoStateHeader,
  ) {}

  static open(file: string): DinoStateFile {
    const contents = SafetensorsFile.open(file);
    try {
      return new DinoStateFile(file, contents, parseHeader(file, contents));
    } catch (error) {
      contents.close();
      throw error;
    }
  }

  /** Loads the state into a fresh session (same architecture, same settings). */
  restoreInto(session: DinoSession): void {
    const fail = (detail: string): never => {
      throw new DinoStateError(this.file, detail);
    };
    if (this.header.batchSeed !== session.job.train.seed) fail(`was written with batch seed ${this.header.batchSeed}, this pretraining uses ${session.job.train.seed}`);
    if (this.header.step > session.job.train.steps) fail(`is at step ${this.header.step}, past this pretraining's ${session.job.train.steps} steps`);
    const wanted = stateEntries(session);
    const wantedNames = new Set(wanted.map(({ name }) => name));
    const missing = wanted.filter(({ name }) => !this.contents.has(name)).map(({ name }) => name);
    const extra = this.contents.names.filter((name) => !wantedNames.has(name));
    if (missing.length > 0 || extra.length > 0) fail(`holds other tensors than this pretraining (missing: ${missing.slice(0, 3).join(', ') || 'none'}; unexpected: ${extra.slice(0, 3).join(', ') || 'none'})`);
    // Read and check everything before assigning anything, so a bad file leaves the session untouched.
    const values: tf.Tensor[] = [];
    try {
      for (const { name, tensor } of wanted) {
        const info = this.contents.info(name);
        if (info.dtype !== 'F32' || info.shape.join() !== tensor.shape.join()) fail(`tensor '${name}' is ${info.dtype} [${info.shape.join(', ')}], expected F32 [${tensor.shape.join(', ')}]`);
        values.push(tf.tensor(this.contents.readFloat32(name), [...tensor.shape], 'float32'));
      }
      const slots = [new Map<string, tf.Tensor>(), new Map<string, tf.Tensor>()];
      wanted.forEach(({ tensor, slot }, i) => {
        if (slot) slots[slot.optimizer].set(slot.key, values[i]);
        else (tensor as tf.Variable).assign(values[i]);
      });
      session.optimizer.setState({ step: this.header.optimizerSteps[0], tensors: slots[0] });
      session.lastLayerOptimizer.setState({ step: this.header.optimizerSteps[1], tensors: slots[1] });
      session.completedSteps = this.header.step;
    } finally {
      tf.dispose(values);
    }
  }

  close(): void {
    this.contents.close();
  }
}

function parseHeader(file: string, contents: SafetensorsFile): DinoStateHeader {
  const fail = (detail: string): never => {
    throw new DinoStateError(file, detail);
  };
  if (contents.metadata.format !== DINO_STATE_FORMAT) fail(`is not a vitpeft DINO state (format ${JSON.stringify(contents.metadata.format ?? null)}, expected '${DINO_STATE_FORMAT}')`);
  const text = contents.metadata[METADATA_KEY] ?? fail(`__metadata__ has no '${METADATA_KEY}'`);
  let value: unknown;
  try {
    value = parseStrictJson(text);
  } catch (error) {
    fail(`__metadata__.${METADATA_KEY} is not valid JSON (${(error as Error).message})`);
  }
  const record = value as Partial<Record<keyof DinoStateHeader, unknown>> | null;
  const count = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof record !== 'object' || record === null || !count(record.step) || !Array.isArray(record.optimizerSteps) || record.optimizerSteps.length !== 2 || !record.optimizerSteps.every(count) || !Number.isSafeInteger(record.batchSeed)) {
    fail(`__metadata__.${METADATA_KEY} must be {step, optimizerSteps: [n, n], batchSeed, extra}`);
  }
  return record as DinoStateHeader;
}
