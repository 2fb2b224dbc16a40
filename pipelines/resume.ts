// What a run folder needs for `vitpeft run --resume`: the run record (run.json: the decoded
// pipeline and the run's options, so a later edit of the pipeline file changes nothing), one
// training-state checkpoint per unfinished job, and the CSVs. Resuming restores the finished
// jobs from results.csv, the baseline and earlier evaluations from evals.csv, and trims
// metrics.csv, evals.csv and timings.csv back to what the checkpoints cover, so the steps that
// are trained again are not recorded twice. Every file read here is checked, none trusted.

import { createHash } from 'crypto';
import { isLeft } from 'fp-ts/Either';
import * as fs from 'fs';
import * as t from 'io-ts';
import * as path from 'path';
import { parse } from 'csv-parse/sync';
import { removeStaleTemporaries, writeFileAtomic } from '../common/atomicWrite';
import { parseStrictJson } from '../models/checkpoint/strictJson';
import type { EvaluationResult } from '../stages/evaluator/stage';
import { readResultsFile } from '../stages/reporter/resultsFile';
import { TrainingStateFile } from '../stages/trainer/trainingState';
import { closed, formatErrors, NonEmptyString, nonEmptyArray, PositiveInt } from './codecs';
import { BASELINE, EvalEvent, MethodResult } from '../common/events';
import type { Job, RunOptions } from './job';
import { LoadedPipeline, PipelineSpec, decodePipeline } from './spec';
import { LocatedError } from '../common/errors';

export const RUN_RECORD = 'run.json';
export const RUN_RECORD_FORMAT = 'vitpeft-run/1';
export const CHECKPOINT_FOLDER = 'checkpoints';

/** A run folder that cannot be resumed as asked, and why. */
export class ResumeError extends LocatedError {}

/** The options that choose a run's jobs; a resumed run takes them from the record. */
export type RecordedOptions = Pick<RunOptions, 'only' | 'shard' | 'seeds' | 'saveModels'>;

const RecordedOptionsCodec = closed(
  'options',
  {},
  { only: nonEmptyArray(NonEmptyString, 'only'), shard: closed('shard', { index: PositiveInt, count: PositiveInt }), seeds: PositiveInt, saveModels: t.boolean },
);

const RunRecordCodec = closed(
  'run record',
  { format: t.literal(RUN_RECORD_FORMAT), pipeline: t.unknown, file: t.string, baseDir: t.string, options: RecordedOptionsCodec },
  { backend: t.string },
);

export interface RunRecord {
  readonly loaded: LoadedPipeline;
  readonly options: RecordedOptions;
  /** The backend the run started on (results are equal only on the same backend). */
  readonly backend?: string;
}

/**
 * The spec as a run record keeps it: a decoded spec already has its sweep expanded into methods,
 * so the sweep itself is left out (decoding the record must not expand it a second time).
 */
export function recordedSpec(spec: PipelineSpec): PipelineSpec {
  const { sweep: _expanded, ...rest } = spec;
  return rest;
}

export function writeRunRecord(outDir: string, loaded: LoadedPipeline, options: RunOptions): void {
  const recorded: RecordedOptions = { only: options.only, shard: options.shard, seeds: options.seeds, saveModels: options.saveModels };
  writeFileAtomic(
    path.join(outDir, RUN_RECORD),
    `${JSON.stringify({ format: RUN_RECORD_FORMAT, pipeline: recordedSpec(loaded.spec), file: loaded.file, baseDir: loaded.baseDir, options: recorded, backend: options.backend }, null, 2)}\n`,
  );
}

/**
 * A run folder's JSON record (run.json, pretrain.json), read and parsed strictly; `missing` says
 * what the folder is not when the record is absent.
 */
export function readRecordFile(outDir: string, name: string, missing: string): { file: string; value: unknown } {
  const file = path.join(outDir, name);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ResumeError(outDir, `no ${name} here: ${missing}`);
    throw new ResumeError(file, `cannot read (${code})`);
  }
  try {
    return { file, value: parseStrictJson(text) };
  } catch (error) {
    throw new ResumeError(file, `not valid JSON (${(error as Error).message})`);
  }
}

/** Reads and checks run.json: the pipeline goes through the same decoder as a pipeline file. */
export function readRunRecord(outDir: string): RunRecord {
  const { file, value } = readRecordFile(outDir, RUN_RECORD, 'not a run folder, or the run was started by a vitpeft without resume support; start it again without --resume');
  const decoded = RunRecordCodec.decode(value);
  if (isLeft(decoded)) throw new ResumeError(file, `not a vitpeft run record:\n${formatErrors(decoded.left).map((line) => `  ${line}`).join('\n')}`);
  const record = decoded.right;
  const spec = decodePipeline(record.pipeline, `${file} (pipeline)`);
  return { loaded: { spec, file: record.file, baseDir: record.baseDir }, options: record.options, backend: record.backend };
}

/** JSON with object keys sorted, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * What a job's training depends on: the model, data, preprocessing, evaluation, the method and
 * its resolved train settings (the checkpoint interval and the evaluation batch aside: the one
 * sets when to save, the other memory). A checkpoint is only resumed by a job with the same
 * fingerprint.
 */
export function jobFingerprint(spec: PipelineSpec, job: Job): string {
  const { checkpointEvery: _interval, ...settings } = job.settings;
  const { batchSize: _evaluationBatch, ...evaluate } = spec.evaluate ?? {};
  const relevant = { model: spec.model, data: spec.data, preprocess: spec.preprocess, evaluate: spec.evaluate ? evaluate : null, method: job.entry, settings };
  return createHash('sha256').update(canonicalJson(relevant)).digest('hex').slice(0, 16);
}

/** The paths of the values that differ between two JSON values (at most `limit`). */
export function jsonDifferences(a: unknown, b: unknown, limit = 5, at = ''): string[] {
  if (canonicalJson(a) === canonicalJson(b)) return [];
  const isObject = (v: unknown) => typeof v === 'object' && v !== null;
  if (!isObject(a) || !isObject(b) || Array.isArray(a) !== Array.isArray(b)) return [at || '(top level)'];
  const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])];
  const out: string[] = [];
  for (const key of keys) {
    const child = Array.isArray(a) ? `${at}[${key}]` : at ? `${at}.${key}` : key;
    out.push(...jsonDifferences((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], limit - out.length, child));
    if (out.length >= limit) break;
  }
  return out;
}

/** checkpoints/<method>-seed<seed>.safetensors; a method name that is not a safe file name is replaced and hashed. */
export function checkpointPath(outDir: string, job: Pick<Job, 'method' | 'seed'>): string {
  const safe = job.method.replace(/[^A-Za-z0-9._-]/g, '_');
  const name = safe === job.method && !job.method.startsWith('.') ? safe : `${safe}-${createHash('sha256').update(job.method).digest('hex').slice(0, 8)}`;
  return path.join(outDir, CHECKPOINT_FOLDER, `${name}-seed${job.seed}.safetensors`);
}

/** The runner's record in a checkpoint, beside the training state. */
export interface JobProgress {
  readonly fingerprint: string;
  readonly method: string;
  readonly seed: number;
  /** Best new-task accuracy over the evaluations so far. */
  readonly best?: number;
  /** The latest evaluation (its values become the results row if no later one comes). */
  readonly last?: EvaluationResult;
  /** Seconds spent on the job so far (for timings.csv). */
  readonly seconds: number;
}

const Accuracies = t.record(t.string, t.number);
const EvaluationCodec = t.intersection([
  t.type({ seconds: t.number }),
  t.partial({ newTaskAccuracy: t.number, retention: Accuracies, retentionUnplugged: Accuracies, frozenHeadAccuracy: t.number }),
]);
const JobProgressCodec = closed('checkpoint progress', { fingerprint: t.string, method: t.string, seed: t.number, seconds: t.number }, { best: t.number, last: EvaluationCodec });

export function parseJobProgress(file: string, extra: unknown): JobProgress {
  const decoded = JobProgressCodec.decode(extra);
  if (isLeft(decoded)) throw new ResumeError(file, `its progress record is damaged: ${formatErrors(decoded.left).join('; ')}`);
  return decoded.right as JobProgress;
}

/** Opens a job's checkpoint and checks that it belongs to this job, settings included. */
export function openJobCheckpoint(file: string, spec: PipelineSpec, job: Job): { state: TrainingStateFile; progress: JobProgress } {
  const state = TrainingStateFile.open(file);
  try {
    const progress = parseJobProgress(file, state.header.extra);
    if (progress.method !== job.method || progress.seed !== job.seed) {
      throw new ResumeError(file, `was written for ${progress.method} seed ${progress.seed}, not ${job.method} seed ${job.seed}`);
    }
    const expected = jobFingerprint(spec, job);
    if (progress.fingerprint !== expected) {
      throw new ResumeError(
        file,
        `was written for other settings of ${job.method} (fingerprint ${progress.fingerprint}; the pipeline now gives ${expected}): ` +
          `the model, data, preprocessing, evaluation or this method's training settings changed; restore them, or delete this file to train ${job.method} seed ${job.seed} from the start`,
      );
    }
    return { state, progress };
  } catch (error) {
    state.close();
    throw error;
  }
}

export const jobKey = (method: string, seed: number | string): string => `${method}\u0000${seed}`;

/** What a resumed run takes over from the folder. */
export interface ResumeState {
  /** Jobs with a final results row (ok or diverged), by jobKey. */
  readonly finished: ReadonlyMap<string, MethodResult>;
  /** The pretrained baseline evaluation, when evals.csv has it. */
  readonly baseline?: EvalEvent;
  /** Recorded evaluations kept for each job (finished ones, and the interrupted one up to its checkpoint). */
  readonly evals: ReadonlyMap<string, EvalEvent[]>;
  /** Unfinished jobs with a checkpoint: its file and step. */
  readonly checkpoints: ReadonlyMap<string, { readonly file: string; readonly step: number }>;
  /** What was done to the folder, for the log. */
  readonly notes: readonly string[];
}

const FINAL_STATUSES = new Set(['ok', 'diverged']);

/**
 * Reads the folder of an interrupted run and makes its CSVs consistent with the checkpoints:
 * rows of a job beyond its checkpoint's step (or all its rows, without a checkpoint) are removed
 * by an atomic rewrite, so that training again appends each step exactly once.
 */
export function prepareResume(outDir: string, spec: PipelineSpec, jobs: readonly Job[]): ResumeState {
  const notes: string[] = [];
  for (const folder of [outDir, path.join(outDir, CHECKPOINT_FOLDER), path.join(outDir, 'models')]) {
    const stale = removeStaleTemporaries(folder);
    if (stale.length > 0) notes.push(`removed ${stale.length} partly written file(s) in ${folder}`);
  }
  const planned = new Map(jobs.map((job) => [jobKey(job.method, job.seed), job]));

  const finished = new Map<string, MethodResult>();
  const resultsFile = path.join(outDir, 'results.csv');
  if (fs.existsSync(resultsFile)) {
    const read = readResultsFile(resultsFile);
    if (read.run !== undefined && read.run !== spec.name) throw new ResumeError(resultsFile, `holds run '${read.run}' but run.json is for '${spec.name}'`);
    for (const result of read.results) {
      const key = jobKey(result.method, result.seed);
      if (!planned.has(key) || !FINAL_STATUSES.has(result.status)) continue;
      if (finished.has(key)) throw new ResumeError(resultsFile, `${result.method} seed ${result.seed} has two rows`);
      finished.set(key, result);
    }
  }

  const checkpoints = new Map<string, { file: string; step: number }>();
  for (const [key, job] of planned) {
    const file = checkpointPath(outDir, job);
    if (!fs.existsSync(file)) continue;
    if (finished.has(key)) {
      fs.rmSync(file, { force: true }); // its results row was written; the checkpoint is no longer needed
      continue;
    }
    const { state } = openJobCheckpoint(file, spec, job);
    checkpoints.set(key, { file, step: state.header.step });
    state.close();
  }

  // Which recorded rows stay: finished jobs', the interrupted jobs' up to their checkpoint, the baseline, and anything not planned here.
  const keepStep = (row: Record<string, string>): boolean => {
    const key = jobKey(row.method, row.seed);
    if (!planned.has(key) || finished.has(key)) return true;
    const checkpoint = checkpoints.get(key);
    return checkpoint !== undefined && Number(row.step) <= checkpoint.step;
  };
  trimCsv(path.join(outDir, 'metrics.csv'), keepStep, notes);
  const evals = trimCsv(path.join(outDir, 'evals.csv'), (row) => row.method === BASELINE || keepStep(row), notes);
  trimCsv(path.join(outDir, 'timings.csv'), (row) => !planned.has(jobKey(row.method, row.seed)) || finished.has(jobKey(row.method, row.seed)), notes);

  const evalsFile = path.join(outDir, 'evals.csv');
  let baseline: EvalEvent | undefined;
  const kept = new Map<string, EvalEvent[]>();
  for (const row of evals) {
    const event = evalFromRow(row, evalsFile);
    if (row.method === BASELINE) {
      baseline ??= event;
      continue;
    }
    const key = jobKey(row.method, row.seed);
    if (!planned.has(key)) continue;
    kept.set(key, [...(kept.get(key) ?? []), event]);
  }

  const timingsFile = path.join(outDir, 'timings.csv');
  if (fs.existsSync(timingsFile)) {
    for (const row of readRows(timingsFile)) {
      const key = jobKey(row.method, row.seed);
      const result = finished.get(key);
      const seconds = Number(row.seconds);
      if (result && Number.isFinite(seconds)) finished.set(key, { ...result, seconds });
    }
  }
  return { finished, baseline, evals: kept, checkpoints, notes };
}

function readRows(file: string): Record<string, string>[] {
  try {
    return parse(fs.readFileSync(file, 'utf8'), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  } catch (error) {
    throw new ResumeError(file, `not a readable CSV (${(error as Error).message})`);
  }
}

/** Keeps the rows `keep` accepts (their text unchanged); an incomplete last line is dropped. Returns the kept rows. */
export function trimCsv(file: string, keep: (row: Record<string, string>) => boolean, notes: string[]): Record<string, string>[] {
  if (!fs.existsSync(file)) return [];
  let text = fs.readFileSync(file, 'utf8');
  let changed = false;
  if (text.length > 0 && !text.endsWith('\n')) {
    text = text.slice(0, text.lastIndexOf('\n') + 1);
    changed = true;
    notes.push(`dropped an incomplete last line of ${file}`);
  }
  const headerEnd = text.indexOf('\n') + 1;
  if (headerEnd === 0) {
    // Not even a whole header: the reporter starts the file again.
    fs.rmSync(file, { force: true });
    return [];
  }
  let records: Array<{ record: Record<string, string>; raw: string }>;
  try {
    records = parse(text, { columns: true, raw: true, skip_empty_lines: true }) as Array<{ record: Record<string, string>; raw: string }>;
  } catch (error) {
    throw new ResumeError(file, `not a readable CSV (${(error as Error).message}); repair or remove it`);
  }
  const kept = records.filter(({ record }) => keep(record));
  if (kept.length !== records.length) notes.push(`removed ${records.length - kept.length} row(s) of ${path.basename(file)} past the checkpoints`);
  if (changed || kept.length !== records.length) writeFileAtomic(file, text.slice(0, headerEnd) + kept.map(({ raw }) => raw).join(''));
  return kept.map(({ record }) => record);
}

/** Linear-probe retention on an event only when measured, so events of runs without it are unchanged. */
function linearProbe(value: number | undefined): { retentionLinear?: number } {
  return value === undefined ? {} : { retentionLinear: value };
}

/** An evals.csv row as a restored eval event (its numbers checked). */
export function evalFromRow(row: Record<string, string>, file: string): EvalEvent {
  const number = (column: string): number | undefined => {
    const text = row[column];
    if (text === undefined || text === '') return undefined;
    const value = Number(text);
    if (!Number.isFinite(value)) throw new ResumeError(file, `column '${column}' holds '${text}', expected a number`);
    return value;
  };
  const byK = (prefix: string): Record<number, number> | undefined => {
    const out: Record<number, number> = {};
    let any = false;
    for (const column of Object.keys(row)) {
      const match = new RegExp(`^${prefix}(\\d+)$`).exec(column);
      const value = match ? number(column) : undefined;
      if (match && value !== undefined) {
        out[Number(match[1])] = value;
        any = true;
      }
    }
    return any ? out : undefined;
  };
  const seed = number('seed');
  const step = number('step');
  if (seed === undefined || step === undefined) throw new ResumeError(file, `a row of ${row.method} lacks its seed or step`);
  return {
    kind: 'eval',
    method: row.method,
    seed,
    step,
    newTaskAccuracy: number('new_task_accuracy'),
    retention: byK('retention_k'),
    retentionUnplugged: byK('retention_unplugged_k'),
    ...linearProbe(number('retention_linear')),
    frozenHeadAccuracy: number('frozen_head_accuracy'),
    seconds: number('seconds') ?? 0,
    restored: true,
  };
}
