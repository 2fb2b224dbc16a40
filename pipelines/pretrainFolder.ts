// What every pretraining objective shares about its folder (out/pretrain-<name>): the options and
// result of a pretraining, its end event, pretrain.json (what --resume needs), the fingerprint a
// checkpoint is checked against, and starting the folder.

import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../common/atomicWrite';
import { Observable, lastValueFrom, tap } from 'rxjs';
import type { StopSignal } from '../common/stopSignal';
import { CsvLog, CsvValue } from '../stages/reporter/csvLog';
import type { PretrainSpec } from './pretrainSpec';
import { CHECKPOINT_FOLDER, ResumeError, canonicalJson, trimCsv } from './resume';

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

/** The checkpoint file of an unfinished pretraining, in its folder's checkpoints/. */
export const PRETRAIN_CHECKPOINT = 'pretrain.safetensors';

/**
 * What a pretraining checkpoint records beside its state: the spec's fingerprint, the seconds so
 * far, and the objective's last measurement (test accuracy, or the k-NN monitor's accuracy).
 */
export interface PretrainProgress {
  readonly fingerprint: string;
  readonly seconds: number;
  readonly measure?: number;
}

function parseProgress(file: string, extra: unknown): PretrainProgress {
  const value = extra as Partial<Record<keyof PretrainProgress, unknown>> | null;
  const ok = typeof value === 'object' && value !== null && typeof value.fingerprint === 'string' && typeof value.seconds === 'number' && (value.measure === undefined || typeof value.measure === 'number');
  if (!ok) throw new ResumeError(file, 'its pretraining progress record is damaged (expected {fingerprint, seconds, measure?})');
  return value as PretrainProgress;
}

/** A state file opened by an objective (its header holds the completed step and the progress record). */
export interface OpenedPretrainState {
  readonly header: { readonly step: number; readonly extra: unknown };
  close(): void;
}

/**
 * Opens the folder's checkpoint with `open` and checks it against the spec (none there: from the
 * start), then trims metrics.csv and evals.csv back to its step. Call before opening the CSVs.
 */
export function openPretrainCheckpoint<F extends OpenedPretrainState>(outDir: string, spec: PretrainSpec, open: (file: string) => F): { state: F; progress: PretrainProgress } | undefined {
  const file = path.join(outDir, CHECKPOINT_FOLDER, PRETRAIN_CHECKPOINT);
  const state = fs.existsSync(file) ? open(file) : undefined;
  try {
    const progress = state ? parseProgress(file, state.header.extra) : undefined;
    const expected = pretrainFingerprint(spec);
    if (progress && progress.fingerprint !== expected) {
      throw new ResumeError(file, `was written for other settings (fingerprint ${progress.fingerprint}, the spec gives ${expected}); delete it to pretrain from the start`);
    }
    const kept = state?.header.step ?? 0;
    for (const name of ['metrics.csv', 'evals.csv']) trimCsv(path.join(outDir, name), (row) => Number(row.step) <= kept, []);
    return state && progress ? { state, progress } : undefined;
  } catch (error) {
    state?.close();
    throw error;
  }
}

function isPretrainEnd(event: { readonly kind: string }): event is PretrainEndEvent {
  return event.kind === 'pretrain-end';
}

/** A pretraining's two CSVs, open for appending. */
export interface PretrainLogs<M extends string, V extends string> {
  readonly metrics: CsvLog<Record<M, CsvValue>>;
  readonly evals: CsvLog<Record<V, CsvValue>>;
}

/**
 * Runs a pretraining's job loop with its rows going to metrics.csv and evals.csv as they come
 * (`record` writes them), and returns the end event. Open the checkpoint (openPretrainCheckpoint,
 * which trims the CSVs) before calling; it is closed here if the CSVs cannot be opened, since the
 * loop that would close it then never starts.
 */
export async function runPretraining<E extends { readonly kind: string }, M extends string, V extends string>(
  outDir: string,
  columns: { readonly metrics: readonly M[]; readonly evals: readonly V[] },
  opened: OpenedPretrainState | undefined,
  record: (event: E, logs: PretrainLogs<M, V>) => void,
  loop: () => Observable<E>,
): Promise<PretrainEndEvent | undefined> {
  let metrics: CsvLog<Record<M, CsvValue>> | undefined;
  let evals: CsvLog<Record<V, CsvValue>> | undefined;
  try {
    try {
      metrics = new CsvLog(path.join(outDir, 'metrics.csv'), columns.metrics);
      evals = new CsvLog(path.join(outDir, 'evals.csv'), columns.evals);
    } catch (error) {
      opened?.close();
      throw error;
    }
    const logs = { metrics, evals };
    const last = await lastValueFrom(loop().pipe(tap((event) => record(event, logs))), { defaultValue: undefined });
    return last !== undefined && isPretrainEnd(last) ? last : undefined;
  } finally {
    metrics?.close();
    evals?.close();
  }
}
