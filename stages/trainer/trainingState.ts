// A training session's resumable state as one safetensors file: the trainable variables under
// their model names, the optimizer's slots as optimizer/<slot>/<name>, and in __metadata__ the
// completed steps (the schedule position and, with the batch seed, the data order and every
// augmentation draw, since the batch stream is a pure function of seed and step), the
// optimizer's own step count, and whatever JSON the caller adds. Only safetensors is read:
// nothing in the file can run code, and every byte is checked before use.

import * as tf from '@tensorflow/tfjs-core';
import { parseStrictJson } from '../../models/checkpoint/strictJson';
import { LazyTensor, SafetensorsFile, writeSafetensorsStreaming } from '../../models/checkpoint/safetensors';
import { TrainingSession } from './session';
import { LocatedError } from '../../common/errors';

export const TRAINING_STATE_FORMAT = 'vitpeft-training-state/1';
const METADATA_KEY = 'vitpeft.training_state';
const OPTIMIZER_PREFIX = 'optimizer/';

/** A training-state file that cannot be used: unreadable, of another format, or not matching the session. */
export class TrainingStateError extends LocatedError {}

export interface TrainingStateHeader {
  /** Steps completed when the state was written. */
  readonly step: number;
  readonly optimizer: { readonly kind: string; readonly step: number };
  /** The batch stream's seed. */
  readonly batchSeed: number;
  /** The caller's record (the runner's: fingerprint, evaluation state, seconds). */
  readonly extra: unknown;
}

/** Writes the session's state atomically; names[i] is the model name of job.trainable[i]. */
export function saveTrainingState(file: string, session: TrainingSession, names: readonly string[], extra: unknown): void {
  const { trainable, settings } = session.job;
  if (names.length !== trainable.length) throw new Error(`saveTrainingState: ${names.length} names for ${trainable.length} trainable variables`);
  const tensors: Array<[string, LazyTensor]> = trainable.map((variable, i) => [names[i], lazyFloat32(variable)]);
  const optimizer = session.optimizer.getState();
  for (const [key, tensor] of optimizer.tensors) {
    const { slot, index } = slotKey(key);
    tensors.push([`${OPTIMIZER_PREFIX}${slot}/${names[index]}`, lazyFloat32(tensor)]);
  }
  const header: TrainingStateHeader = {
    step: session.completedSteps,
    optimizer: { kind: settings.optimizer, step: optimizer.step },
    batchSeed: settings.seed,
    extra,
  };
  writeSafetensorsStreaming(file, tensors, { format: TRAINING_STATE_FORMAT, [METADATA_KEY]: JSON.stringify(header) });
}

function lazyFloat32(tensor: tf.Tensor): LazyTensor {
  if (tensor.dtype !== 'float32') throw new Error(`training state: a ${tensor.dtype} tensor cannot be saved (float32 expected)`);
  return { dtype: 'F32', shape: tensor.shape, data: () => tensor.dataSync() as Float32Array };
}

function slotKey(key: string): { slot: string; index: number } {
  const match = /^(.+)\.(\d+)$/.exec(key);
  if (!match) throw new Error(`optimizer state key '${key}' is not <slot>.<index>`);
  return { slot: match[1], index: Number(match[2]) };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A training-state file opened and its header checked; tensors are read by restoreInto. */
export class TrainingStateFile {
  private constructor(
    readonly file: string,
    private readonly contents: SafetensorsFile,
    readonly header: TrainingStateHeader,
  ) {}

  /** Opens and validates the header; SafetensorsError for a damaged file, TrainingStateError for another kind of file. */
  static open(file: string): TrainingStateFile {
    const contents = SafetensorsFile.open(file);
    try {
      return new TrainingStateFile(file, contents, parseHeader(file, contents));
    } catch (error) {
      contents.close();
      throw error;
    }
  }

  /**
   * Loads the state into a fresh session: variables by name (exactly the session's trainable set,
   * same shapes), the optimizer's slots and step count, and the completed steps.
   */
  restoreInto(session: TrainingSession, names: readonly string[]): void {
    const { trainable, settings } = session.job;
    const fail = (detail: string): never => {
      throw new TrainingStateError(this.file, detail);
    };
    if (this.header.optimizer.kind !== settings.optimizer) fail(`was written by optimizer '${this.header.optimizer.kind}', this run uses '${settings.optimizer}'`);
    if (this.header.batchSeed !== settings.seed) fail(`was written with batch seed ${this.header.batchSeed}, this run uses ${settings.seed}`);
    if (this.header.step > settings.steps) fail(`is at step ${this.header.step}, past this run's ${settings.steps} steps`);
    const saved = this.contents.names.filter((name) => !name.startsWith(OPTIMIZER_PREFIX));
    const wanted = new Set(names);
    const extra = saved.filter((name) => !wanted.has(name));
    const missing = names.filter((name) => !this.contents.has(name));
    if (missing.length > 0 || extra.length > 0) {
      fail(
        `holds other trainable variables than this method has (${missing.length > 0 ? `missing ${list(missing)}` : ''}${missing.length > 0 && extra.length > 0 ? '; ' : ''}${extra.length > 0 ? `not trainable here: ${list(extra)}` : ''})`,
      );
    }
    const read = (name: string, expected: readonly number[]): tf.Tensor => {
      const info = this.contents.info(name);
      if (info.dtype !== 'F32') fail(`tensor '${name}' is ${info.dtype}, expected F32`);
      if (info.shape.join() !== expected.join()) fail(`tensor '${name}' has shape [${info.shape.join(', ')}], the model's is [${expected.join(', ')}]`);
      return tf.tensor(this.contents.readFloat32(name), [...expected], 'float32');
    };
    // Read and check everything before assigning anything, so a bad file leaves the session untouched.
    const index = new Map(names.map((name, i) => [name, i]));
    const slots = new Map<string, tf.Tensor>();
    const values: tf.Tensor[] = [];
    try {
      names.forEach((name, i) => values.push(read(name, trainable[i].shape)));
      for (const name of this.contents.names.filter((n) => n.startsWith(OPTIMIZER_PREFIX))) {
        const rest = name.slice(OPTIMIZER_PREFIX.length);
        const slash = rest.indexOf('/');
        const variable = slash > 0 ? index.get(rest.slice(slash + 1)) : undefined;
        if (variable === undefined) fail(`optimizer tensor '${name}' belongs to no trainable variable`);
        slots.set(`${rest.slice(0, slash)}.${variable}`, read(name, trainable[variable!].shape));
      }
      try {
        session.optimizer.setState({ step: this.header.optimizer.step, tensors: slots });
      } catch (error) {
        fail((error as Error).message);
      }
      trainable.forEach((variable, i) => variable.assign(values[i]));
      session.completedSteps = this.header.step;
    } finally {
      tf.dispose([...values, ...slots.values()]);
    }
  }

  close(): void {
    this.contents.close();
  }
}

function list(names: readonly string[]): string {
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

function parseHeader(file: string, contents: SafetensorsFile): TrainingStateHeader {
  const fail = (detail: string): never => {
    throw new TrainingStateError(file, detail);
  };
  if (contents.metadata.format !== TRAINING_STATE_FORMAT) {
    fail(`is not a vitpeft training state (format ${JSON.stringify(contents.metadata.format ?? null)}, expected '${TRAINING_STATE_FORMAT}')`);
  }
  const text = contents.metadata[METADATA_KEY];
  if (text === undefined) fail(`__metadata__ has no '${METADATA_KEY}'`);
  let value: unknown;
  try {
    value = parseStrictJson(text!);
  } catch (error) {
    fail(`__metadata__.${METADATA_KEY} is not valid JSON (${(error as Error).message})`);
  }
  if (!isRecord(value)) return fail(`__metadata__.${METADATA_KEY} is not a JSON object`);
  const { step, optimizer, batchSeed, extra } = value;
  if (!nonNegativeInteger(step)) fail(`step ${JSON.stringify(step)} is not a non-negative integer`);
  if (!isRecord(optimizer) || typeof optimizer.kind !== 'string' || !nonNegativeInteger(optimizer.step)) fail('optimizer must be {kind, step}');
  if (typeof batchSeed !== 'number' || !Number.isSafeInteger(batchSeed)) fail(`batchSeed ${JSON.stringify(batchSeed)} is not an integer`);
  const known = ['step', 'optimizer', 'batchSeed', 'extra'];
  const unknown = Object.keys(value).filter((key) => !known.includes(key));
  if (unknown.length > 0) fail(`unknown field '${unknown[0]}' in __metadata__.${METADATA_KEY}`);
  return { step: step as number, optimizer: { kind: (optimizer as { kind: string }).kind, step: (optimizer as { step: number }).step }, batchSeed: batchSeed as number, extra };
}
