// The pipeline file: one codec per config shape (static types derived with t.TypeOf), every
// record closed against typos, every failure reported with its field path, nothing run on error.

import { isLeft } from 'fp-ts/Either';
import * as fs from 'fs';
import * as t from 'io-ts';
import * as path from 'path';
import YAML from 'yaml';
import { parseStrictJson } from '../models/checkpoint/strictJson';
import { BLOCK_PLACEMENTS, LORA_TARGETS } from '../stages/surgery/methodSpec';
import {
  Int,
  NonEmptyString,
  NonNegativeInt,
  NonNegativeNumber,
  PositiveInt,
  PositiveNumber,
  Rgb,
  UnitInterval,
  closed,
  flagOr,
  formatErrors,
  nonEmptyArray,
  oneOf,
  refined,
  taggedUnion,
} from './codecs';

const trainProps = {
  steps: PositiveInt,
  batchSize: PositiveInt,
  optimizer: oneOf(['sgd', 'adamw'] as const),
  lr: PositiveNumber,
  momentum: UnitInterval,
  weightDecay: NonNegativeNumber,
  warmupSteps: NonNegativeInt,
  schedule: oneOf(['cosine', 'constant'] as const),
  seed: Int,
  clipGradNorm: PositiveNumber,
  labelSmoothing: UnitInterval,
  betas: refined(t.tuple([t.number, t.number]), (b) => b.every((x) => x >= 0 && x < 1), 'two numbers in [0, 1) [beta1, beta2]'),
  /**
   * Write a resumable checkpoint every this many steps (0: never). Default: the evaluation
   * interval (evaluate.every), or a tenth of the steps when evaluations are only at the end.
   */
  checkpointEvery: NonNegativeInt,
  /**
   * Examples per forward/backward pass; a batch is stepped as micro-batches whose gradients are
   * summed (gradient accumulation). "auto" (the default): the whole batch when the memory plan
   * says it fits, else the largest micro-batch that does.
   */
  microBatch: refined(t.union([t.number, t.literal('auto')]), (m) => m === 'auto' || (Number.isInteger(m) && m > 0), 'a positive integer or "auto"'),
};

export const TrainSpec = closed('train', { steps: PositiveInt, batchSize: PositiveInt, lr: PositiveNumber }, {
  optimizer: trainProps.optimizer,
  momentum: trainProps.momentum,
  weightDecay: trainProps.weightDecay,
  warmupSteps: trainProps.warmupSteps,
  schedule: trainProps.schedule,
  seed: trainProps.seed,
  clipGradNorm: trainProps.clipGradNorm,
  labelSmoothing: trainProps.labelSmoothing,
  betas: trainProps.betas,
  checkpointEvery: trainProps.checkpointEvery,
  microBatch: trainProps.microBatch,
});

/** Per-method overrides of train settings (the paper's per-method learning rates). */
export const TrainOverrides = closed('train overrides', {}, trainProps);

const common = { name: NonEmptyString, train: TrainOverrides };

export const MethodEntry = taggedUnion(
  'method',
  {
    full: closed('full', { method: t.literal('full') }, common),
    linear: closed('linear', { method: t.literal('linear') }, common),
    topk: closed('topk', { method: t.literal('topk'), k: PositiveInt }, common),
    lora: closed(
      'lora',
      { method: t.literal('lora'), rank: PositiveInt },
      { ...common, alpha: PositiveNumber, targets: nonEmptyArray(oneOf(LORA_TARGETS), 'targets') },
    ),
    block: closed(
      'block',
      { method: t.literal('block') },
      { ...common, p: PositiveInt, split: PositiveInt, placement: oneOf(BLOCK_PLACEMENTS) },
    ),
  },
  'method',
);

export const PipelineSpec = closed(
  'pipeline',
  {
    name: refined(t.string, (s) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s), 'a name of letters, digits, ".", "_" or "-" (it names the output folder)'),
    model: closed('model', { checkpoint: NonEmptyString }, { heads: PositiveInt, layerNormEps: PositiveNumber, allowUnknownKeys: t.boolean }),
    data: closed(
      'data',
      { train: NonEmptyString, test: NonEmptyString },
      { retention: closed('retention', { bank: NonEmptyString, query: NonEmptyString }) },
    ),
    preprocess: closed('preprocess', { size: PositiveInt }, { mean: Rgb, std: Rgb, train: NonEmptyString, test: NonEmptyString, retention: NonEmptyString }),
    train: TrainSpec,
    methods: nonEmptyArray(MethodEntry, 'methods'),
  },
  {
    description: t.string,
    evaluate: closed(
      'evaluate',
      {},
      {
        every: NonNegativeInt,
        /** Evaluations after these steps too (0: before the first step), e.g. log-spaced for the first iterations. */
        at: nonEmptyArray(NonNegativeInt, 'at'),
        /**
         * Images per evaluation forward pass: "auto" (the default) the largest the memory plan says
         * fits, up to train.batchSize (at least 32); a number that cannot fit is refused.
         */
        batchSize: refined(t.union([t.number, t.literal('auto')]), (b) => b === 'auto' || (Number.isInteger(b) && b > 0), 'a positive integer or "auto"'),
        knn: closed('knn', {}, {
          k: nonEmptyArray(PositiveInt, 'k'),
          temperature: PositiveNumber,
          headline: PositiveInt,
          /** How the bank's and queries' features are kept between forward and search: float32, or float16 at half the memory. */
          precision: oneOf(['float32', 'float16'] as const),
        }),
        /** MiB a job may keep of frozen-block activations between its evaluations (0: none). */
        frozenPrefixMB: NonNegativeInt,
        /**
         * Linear-probe retention beside k-NN: a logistic regression fitted on the bank's frozen
         * features, scored on the queries. true (defaults), false, or its settings.
         */
        linearProbe: flagOr(closed('linearProbe', {}, { epochs: PositiveInt, weightDecay: NonNegativeNumber }), 'an object with keys epochs, weightDecay'),
      },
    ),
    seeds: PositiveInt,
    /** Run every method once per learning rate (named e.g. full@lr0.01): a learning-rate sweep. */
    sweep: closed('sweep', { lr: nonEmptyArray(PositiveNumber, 'lr') }),
  },
);

export type TrainSpec = t.TypeOf<typeof TrainSpec>;
export type TrainOverrides = t.TypeOf<typeof TrainOverrides>;
export type MethodEntry = t.TypeOf<typeof MethodEntry>;
export type PipelineSpec = t.TypeOf<typeof PipelineSpec>;

/** A pipeline file that failed to decode: every problem, each with its field path. */
export class PipelineSpecError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the pipeline:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'PipelineSpecError';
  }
}

/** The name a method's results go under: its own, else derived (full, linear, top3, lora-r8, block-p2). */
export function methodName(entry: MethodEntry): string {
  if (entry.name) return entry.name;
  switch (entry.method) {
    case 'full':
    case 'linear':
      return entry.method;
    case 'topk':
      return `top${entry.k}`;
    case 'lora':
      return `lora-r${entry.rank}`;
    case 'block':
      return entry.p !== undefined ? `block-p${entry.p}` : entry.split !== undefined ? `block-split${entry.split}` : 'block';
  }
}

/** The name a sweep gives a method run at one learning rate. */
export function sweepName(name: string, lr: number): string {
  return `${name}@lr${lr}`;
}

/** Replaces each method by one copy per swept learning rate; a spec without a sweep is returned as is. */
export function expandSweep(spec: PipelineSpec): PipelineSpec {
  if (!spec.sweep) return spec;
  const { lr: rates } = spec.sweep;
  const methods = spec.methods.flatMap((entry) => rates.map((lr) => ({ ...entry, name: sweepName(methodName(entry), lr), train: { ...(entry.train ?? {}), lr } })));
  return { ...spec, methods };
}

export function decodePipeline(input: unknown, file: string): PipelineSpec {
  const result = PipelineSpec.decode(input);
  if (isLeft(result)) throw new PipelineSpecError(file, formatErrors(result.left));
  const spec = expandSweep(result.right);
  const problems: string[] = [];
  const seen = new Map<string, number>();
  spec.methods.forEach((entry, index) => {
    const name = methodName(entry);
    if (seen.has(name)) problems.push(`methods[${index}]: name '${name}' is already used by methods[${seen.get(name)}]; give one a distinct "name"`);
    seen.set(name, index);
    if (entry.method === 'block' && entry.p !== undefined && entry.split !== undefined) problems.push(`methods[${index}]: give either p or split, not both`);
  });
  const knn = spec.evaluate?.knn;
  if (knn?.headline !== undefined && knn.k && !knn.k.includes(knn.headline)) problems.push(`evaluate.knn.headline: ${knn.headline} is not among k [${knn.k.join(', ')}]`);
  if (spec.evaluate?.linearProbe !== undefined && spec.evaluate.linearProbe !== false && !spec.data.retention) {
    problems.push('evaluate.linearProbe: linear-probe retention is fitted on the retention bank, but data.retention is not given; add data.retention { bank, query } or remove evaluate.linearProbe');
  }
  const at = spec.evaluate?.at ?? [];
  at.forEach((step, index) => {
    if (index > 0 && step <= at[index - 1]) problems.push(`evaluate.at[${index}]: ${step} does not come after ${at[index - 1]}; list the steps in increasing order`);
  });
  const shortest = Math.min(...spec.methods.map((entry) => entry.train?.steps ?? spec.train.steps));
  if (at.length > 0 && at[at.length - 1] > shortest) problems.push(`evaluate.at: step ${at[at.length - 1]} is past the ${shortest} steps a method trains`);
  if (problems.length > 0) throw new PipelineSpecError(file, problems);
  return spec;
}

/** Parses JSON (duplicate keys rejected) or YAML by extension. */
export function parsePipelineText(text: string, file: string): unknown {
  const yaml = /\.ya?ml$/i.test(file);
  try {
    return yaml ? YAML.parse(text, { uniqueKeys: true }) : parseStrictJson(text);
  } catch (error) {
    throw new PipelineSpecError(file, [`not valid ${yaml ? 'YAML' : 'JSON'}: ${(error as Error).message.split('\n')[0]}`]);
  }
}

export interface LoadedPipeline {
  readonly spec: PipelineSpec;
  readonly file: string;
  /** Folder that relative paths in the file are resolved against. */
  readonly baseDir: string;
}

export function loadPipelineFile(file: string): LoadedPipeline {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new PipelineSpecError(file, [code === 'ENOENT' ? 'no such file' : `cannot read (${code})`]);
  }
  return { spec: decodePipeline(parsePipelineText(text, file), file), file, baseDir: path.dirname(path.resolve(file)) };
}

/**
 * A pipeline built in code: the object is decoded by the same codec as a file (refinements and
 * unknown keys checked, errors naming `label` and the field path); relative paths resolve
 * against baseDir.
 */
export function pipelineFromObject(spec: PipelineSpec, options: { readonly baseDir: string; readonly label?: string }): LoadedPipeline {
  const label = options.label ?? `pipeline '${spec.name}' (in code)`;
  return { spec: decodePipeline(spec, label), file: label, baseDir: path.resolve(options.baseDir) };
}

/** The checkpoint interval when a pipeline gives none: evaluate.every, else a tenth of the steps. */
export function defaultCheckpointEvery(spec: PipelineSpec, steps: number): number {
  const every = spec.evaluate?.every ?? 0;
  return every > 0 ? every : Math.max(1, Math.ceil(steps / 10));
}

/** Train settings: the file's, overridden by a method's, defaults filled in (checkpointEvery 0 here; see defaultCheckpointEvery). */
export function resolveTrain(train: TrainSpec, overrides: TrainOverrides = {}): Required<Omit<TrainSpec, 'clipGradNorm' | 'betas'>> & Pick<TrainSpec, 'clipGradNorm' | 'betas'> {
  const merged = { ...train, ...overrides };
  return {
    optimizer: 'sgd',
    momentum: 0.9,
    weightDecay: 0,
    warmupSteps: 0,
    schedule: 'cosine',
    seed: 0,
    labelSmoothing: 0,
    checkpointEvery: 0,
    microBatch: 'auto',
    ...merged,
  };
}
