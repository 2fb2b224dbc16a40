// What every pretraining objective shares about its folder (out/pretrain-<name>): the options and
// result of a pretraining, its end event, pretrain.json (what --resume needs), the fingerprint a
// checkpoint is checked against, and starting the folder.

import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../common/atomicWrite';
import type { StopSignal } from '../common/stopSignal';
import type { PretrainSpec } from './pretrainSpec';
import { CHECKPOINT_FOLDER, canonicalJson } from './resume';

export type PretrainStatus = 'ok' | 'interrupted' | 'diverged';

export interface PretrainEndEvent {
  readonly kind: 'pretrain-end';
  readonly status: PretrainStatus;
  readonly step: number;
  readonly note?: string;
}

export interface PretrainResult {
  readonly status: PretrainStatus;
  /** The checkpoint written (status ok). */
  readonly output: string;
  /** The supervised objective's last test accuracy (NaN for DINO). */
  readonly testAccuracy: number;
  /** The DINO objective's last k-NN@20 of the teacher's features on data.retention (percent). */
  readonly knnAccuracy?: number;
  readonly parameters: number;
  readonly steps: number;
  readonly seconds: number;
  readonly note?: string;
}

export interface PretrainOptions {
  /** The pretraining's folder (out/pretrain-<name>). */
  readonly outDir: string;
  readonly log: (line: string) => void;
  /** Read after every step: once requested, the pretraining checkpoints and ends 'interrupted'. */
  readonly stop?: StopSignal;
  /** Continue from the folder's checkpoint (its pretrain.json must hold the same spec). */
  readonly resume?: boolean;
}

export interface LoadedPretrain {
  readonly spec: PretrainSpec;
  readonly file: string;
  readonly baseDir: string;
}

export const PRETRAIN_RECORD = 'pretrain.json';
export const PRETRAIN_RECORD_FORMAT = 'vitpeft-pretrain/1';
/** What the trained model depends on (the description, the output path and the checkpoint interval aside). */
export function pretrainFingerprint(spec: PretrainSpec): string {
  const { description: _description, output: _output, train, ...rest } = spec;
  const { checkpointEvery: _interval, ...settings } = train;
  return createHash('sha256').update(canonicalJson({ ...rest, train: settings })).digest('hex').slice(0, 16);
}

/** A fresh pretraining starts an empty folder with its record; a resumed one keeps what is there. */
export function startFolder(loaded: LoadedPretrain, options: PretrainOptions): void {
  fs.mkdirSync(options.outDir, { recursive: true });
  if (options.resume) return;
  for (const name of ['metrics.csv', 'evals.csv', CHECKPOINT_FOLDER]) fs.rmSync(path.join(options.outDir, name), { recursive: true, force: true });
  const record = { format: PRETRAIN_RECORD_FORMAT, spec: loaded.spec, file: loaded.file, baseDir: loaded.baseDir };
  writeFileAtomic(path.join(options.outDir, PRETRAIN_RECORD), `${JSON.stringify(record, null, 2)}\n`);
}
