// The pretraining file: a ViT of a given shape trained from a seeded random init on one dataset,
// written as a timm-layout checkpoint. The objective is supervised (a classification head;
// pipelines/pretrain-digits.json) unless it says "dino": self-distillation without labels (the
// `dino` block; how the built-in default's pretrained model is made, pipelines/pretrain-dino-digits.json).

import { isLeft } from 'fp-ts/Either';
import * as fs from 'fs';
import * as t from 'io-ts';
import * as path from 'path';
import { NonEmptyString, NonNegativeInt, NonNegativeNumber, PositiveInt, PositiveNumber, Rgb, closed, formatErrors, oneOf, refined } from './codecs';
import { PipelineSpecError, TrainSpec, parsePipelineText } from './spec';

export const OBJECTIVES = ['supervised', 'dino'] as const;

const Probability = refined(t.number, (n) => n >= 0 && n <= 1, 'a probability in [0, 1]');
const Range = refined(t.array(t.number), (a) => a.length === 2 && a.every(Number.isFinite), 'a range [low, high]');

/** Every key optional: the defaults are DINO's (stages/trainer/dino/settings.ts DINO_DEFAULTS). */
export const DinoSpec = closed(
  'dino',
  {},
  {
    outDim: PositiveInt,
    hiddenDim: PositiveInt,
    bottleneckDim: PositiveInt,
    normLastLayer: t.boolean,
    batchNorm: t.boolean,
    freezeLastLayerSteps: NonNegativeInt,
    studentTemperature: PositiveNumber,
    teacherTemperature: closed('teacherTemperature', {}, { start: PositiveNumber, end: PositiveNumber, warmupSteps: NonNegativeInt }),
    centerMomentum: Probability,
    teacherMomentum: t.number,
    weightDecay: closed('weightDecay', {}, { start: NonNegativeNumber, end: NonNegativeNumber }),
    clipGradNorm: NonNegativeNumber,
    koleo: NonNegativeNumber,
    /** The cosine schedules' length when the run is their first train.steps steps (at least train.steps). */
    scheduleSteps: PositiveInt,
    crops: closed('crops', {}, { globalScale: Range, localCrops: NonNegativeInt, localSize: PositiveInt, localScale: Range, interpolation: t.keyof({ bilinear: null, bicubic: null }) }),
    augment: closed(
      'augment',
      {},
      {
        flip: t.boolean,
        jitter: Probability,
        brightness: NonNegativeNumber,
        contrast: NonNegativeNumber,
        blur: refined(t.array(t.number), (a) => a.length === 3 && a.every((p) => p >= 0 && p <= 1), 'three probabilities [global 1, global 2, local]'),
        blurSigma: Range,
        solarize: Probability,
        colorJitter: t.keyof({ pil: null, float: null }),
      },
    ),
    /** 'pil' (absent): 8-bit views as torchvision/PIL; 'float': continuous crops and float arithmetic. */
    views: t.keyof({ pil: null, float: null }),
    /** 'dino' (absent): DINO's initialisation; 'vitpeft': the supervised pretraining's (models/vit/module.ts InitScheme). */
    init: t.keyof({ dino: null, vitpeft: null }),
    /** 'dino' (absent): the local views' position embeddings resampled bicubic without antialiasing, as DINO; 'timm': antialiased. */
    positionResample: t.keyof({ dino: null, timm: null }),
  },
);

export type DinoSpec = t.TypeOf<typeof DinoSpec>;

export const PretrainSpec = closed(
  'pretrain',
  {
    name: NonEmptyString,
    /** The input size is preprocess.size. */
    architecture: closed('architecture', { patchSize: PositiveInt, width: PositiveInt, depth: PositiveInt, heads: PositiveInt, mlpHidden: PositiveInt }, { layerNormEps: PositiveNumber }),
    /** test: the supervised objective's test split; retention: the DINO objective's k-NN monitor (labels only measure). */
    data: closed('data', { train: NonEmptyString }, { test: NonEmptyString, retention: closed('retention', { bank: NonEmptyString, query: NonEmptyString }) }),
    preprocess: closed('preprocess', { size: PositiveInt }, { mean: Rgb, std: Rgb, train: NonEmptyString, test: NonEmptyString }),
    train: TrainSpec,
    /** Where the checkpoint goes, relative to the file. */
    output: NonEmptyString,
  },
  {
    description: t.string,
    /** 'supervised' when absent. */
    objective: oneOf(OBJECTIVES),
    dino: DinoSpec,
    evaluate: closed('evaluate', {}, { every: NonNegativeInt, batchSize: PositiveInt }),
  },
);

export type PretrainSpec = t.TypeOf<typeof PretrainSpec>;

/** Decodes and checks a pretraining spec; `where` names the file in errors. */
export function decodePretrain(value: unknown, where: string): PretrainSpec {
  const decoded = PretrainSpec.decode(value);
  if (isLeft(decoded)) throw new PipelineSpecError(where, formatErrors(decoded.left));
  const spec = decoded.right;
  const problems: string[] = [];
  if (spec.preprocess.size % spec.architecture.patchSize !== 0) problems.push(`preprocess.size: ${spec.preprocess.size} is not a multiple of architecture.patchSize ${spec.architecture.patchSize}`);
  if (spec.architecture.width % spec.architecture.heads !== 0) problems.push(`architecture.heads: width ${spec.architecture.width} is not divisible by ${spec.architecture.heads} heads`);
  problems.push(...(spec.objective === 'dino' ? dinoProblems(spec) : supervisedProblems(spec)));
  if (problems.length > 0) throw new PipelineSpecError(where, problems);
  return spec;
}

function supervisedProblems(spec: PretrainSpec): string[] {
  const problems: string[] = [];
  if (spec.data.test === undefined) problems.push('data.test: the supervised objective needs a test split');
  if (spec.data.retention !== undefined) problems.push(`data.retention: only the 'dino' objective uses a retention bank and query`);
  if (spec.dino !== undefined) problems.push(`dino: settings for the 'dino' objective, but the objective is '${spec.objective ?? 'supervised'}'`);
  return problems;
}

function dinoProblems(spec: PretrainSpec): string[] {
  const problems: string[] = [];
  const dino = spec.dino ?? {};
  const patch = spec.architecture.patchSize;
  if (dino.outDim !== undefined && dino.outDim < 2) problems.push(`dino.outDim: K must be at least 2 prototypes, got ${dino.outDim}`);
  if (dino.teacherMomentum !== undefined && !(dino.teacherMomentum >= 0 && dino.teacherMomentum <= 1)) problems.push(`dino.teacherMomentum: expected a number in [0, 1], got ${dino.teacherMomentum}`);
  if (dino.scheduleSteps !== undefined && dino.scheduleSteps < spec.train.steps) problems.push(`dino.scheduleSteps: the schedules' ${dino.scheduleSteps} steps are fewer than train.steps ${spec.train.steps}; expected at least ${spec.train.steps}`);
  const localSize = dino.crops?.localSize;
  if (localSize !== undefined && localSize % patch !== 0) problems.push(`dino.crops.localSize: ${localSize} is not a multiple of architecture.patchSize ${patch}`);
  for (const key of ['globalScale', 'localScale'] as const) {
    const range = dino.crops?.[key];
    if (range && !(range[0] > 0 && range[0] <= range[1] && range[1] <= 1)) problems.push(`dino.crops.${key}: expected [low, high] with 0 < low <= high <= 1, got ${JSON.stringify(range)}`);
  }
  if (dino.views === 'float') {
    if (dino.crops?.interpolation !== undefined) problems.push(`dino.crops.interpolation: applies to the 'pil' views only; dino.views 'float' samples its crops bilinearly`);
    if (dino.augment?.colorJitter !== undefined) problems.push(`dino.augment.colorJitter: applies to the 'pil' views only; dino.views 'float' jitters on floats`);
  }
  const sigma = dino.augment?.blurSigma;
  if (sigma && !(sigma[0] > 0 && sigma[0] <= sigma[1])) problems.push(`dino.augment.blurSigma: expected [low, high] with 0 < low <= high, got ${JSON.stringify(sigma)}`);
  if (spec.data.test !== undefined) problems.push(`data.test: the 'dino' objective reads no test split (its monitor is data.retention)`);
  if ((spec.evaluate?.every ?? 0) > 0 && spec.data.retention === undefined) problems.push('data.retention: evaluate.every asks for the k-NN monitor, which needs {bank, query}');
  if (spec.train.optimizer !== undefined && spec.train.optimizer !== 'adamw') problems.push(`train.optimizer: the 'dino' objective trains with 'adamw', got '${spec.train.optimizer}'`);
  for (const key of ['weightDecay', 'clipGradNorm', 'labelSmoothing', 'momentum'] as const) {
    if (spec.train[key] !== undefined) problems.push(`train.${key}: not used by the 'dino' objective${key === 'weightDecay' || key === 'clipGradNorm' ? ` (set dino.${key})` : ''}`);
  }
  return problems;
}

/** The supervised objective's test split (decodePretrain made sure it is there). */
export function supervisedTest(spec: PretrainSpec): string {
  if (spec.data.test === undefined) throw new PipelineSpecError('pretraining spec', ['data.test: the supervised objective needs a test split']);
  return spec.data.test;
}

export function loadPretrainFile(file: string): { spec: PretrainSpec; file: string; baseDir: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new PipelineSpecError(file, [(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read (${String(error)})`]);
  }
  return { spec: decodePretrain(parsePipelineText(text, file), file), file, baseDir: path.dirname(path.resolve(file)) };
}
