// What a run was, for the head of its report: name, model, data, backend, k-NN settings and
// timings from spec.json, run.json and timings.csv, and the command that reproduces it. Every
// file is optional (a run that has just started has few); a file that is there but unreadable
// is an error naming it.

import * as fs from 'fs';
import * as path from 'path';
import { LocatedError } from '../../../common/errors';
import { readCsv } from '../csvLog';

export interface JobTiming {
  readonly method: string;
  readonly seed: number;
  readonly steps: number;
  readonly status: string;
  readonly seconds: number;
}

export interface RunInfo {
  readonly run: string;
  readonly folder: string;
  readonly description?: string;
  readonly backend?: string;
  readonly model?: string;
  readonly data?: Readonly<Record<string, string>>;
  readonly knnK: readonly number[];
  readonly knnHeadline: number;
  /** train.steps of the pipeline (a method may override it). */
  readonly steps?: number;
  readonly evaluateEvery?: number;
  /** The command line that runs the same pipeline with the same options. */
  readonly command?: string;
  readonly timings: readonly JobTiming[];
  /** spec.json as written (the decoded pipeline plus what it resolved to). */
  readonly spec?: unknown;
}

type Json = Record<string, unknown>;

function readJson(file: string): Json | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    const value: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object');
    return value as Json;
  } catch (error) {
    throw new LocatedError(file, `not readable JSON (${(error as Error).message})`);
  }
}

function object(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function positive(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

function quote(argument: string): string {
  return /^[\w@%+=:,./-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
}

/** `vitpeft run` with the recorded pipeline file, options and backend. */
export function reproduceCommand(folder: string, record: Json, backend: string | undefined): string | undefined {
  const file = text(record.file);
  if (file === undefined) return undefined;
  const options = object(record.options);
  const args = ['vitpeft'];
  const backendName = backend?.split(/[\s(]/)[0];
  if (backendName && ['tensorflow', 'wasm', 'cpu'].includes(backendName)) args.push('--backend', backendName);
  args.push('run', file, '--out', path.dirname(path.resolve(folder)));
  if (Array.isArray(options.only)) args.push('--only', options.only.join(','));
  const shard = object(options.shard);
  if (typeof shard.index === 'number' && typeof shard.count === 'number') args.push('--shard', `${shard.index}/${shard.count}`);
  if (typeof options.seeds === 'number') args.push('--seeds', String(options.seeds));
  if (options.saveModels === false) args.push('--no-save-models');
  return args.map(quote).join(' ');
}

function describeModel(resolved: Json): string | undefined {
  const config = object(resolved.model);
  const checkpoint = text(resolved.checkpoint);
  if (Object.keys(config).length === 0) return checkpoint;
  const shape = `ViT depth ${String(config.depth)}, width ${String(config.width)}, ${String(config.heads)} heads, patch ${String(config.patchSize)} at ${String(config.imageSize)} px`;
  return checkpoint ? `${shape} (${path.basename(checkpoint)})` : shape;
}

function readTimings(file: string): JobTiming[] {
  if (!fs.existsSync(file)) return [];
  try {
    return readCsv(file).map((row) => ({ method: row.method, seed: Number(row.seed), steps: Number(row.steps), status: row.status, seconds: Number(row.seconds) }));
  } catch (error) {
    throw new LocatedError(file, `not a readable CSV (${(error as Error).message})`);
  }
}

export function readRunInfo(folder: string): RunInfo {
  const spec = readJson(path.join(folder, 'spec.json'));
  const record = readJson(path.join(folder, 'run.json'));
  const pipeline = object(spec ?? record?.pipeline);
  const resolved = object(spec?.resolved);
  const knn = object(resolved.knn ?? object(pipeline.evaluate).knn);
  const knnK = Array.isArray(knn.k) ? knn.k.filter((k): k is number => typeof k === 'number') : [];
  const backend = text(resolved.backend) ?? text(record?.backend);
  const data = object(resolved.data);
  return {
    run: text(pipeline.name) ?? path.basename(path.resolve(folder)),
    folder: path.resolve(folder),
    description: text(pipeline.description),
    backend,
    model: describeModel(resolved),
    data: Object.fromEntries(Object.entries(data).filter((entry): entry is [string, string] => typeof entry[1] === 'string')),
    knnK,
    knnHeadline: positive(knn.headline) ?? knnK[0] ?? 20,
    steps: positive(object(pipeline.train).steps),
    evaluateEvery: positive(object(pipeline.evaluate).every),
    command: record ? reproduceCommand(folder, record, backend) : undefined,
    timings: readTimings(path.join(folder, 'timings.csv')),
    spec,
  };
}
