// The pretraining file: a ViT of a given shape trained from a seeded random init with a
// classification head on one dataset, written as a timm-layout checkpoint. This is how the
// built-in default's pretrained model is made (pipelines/pretrain-digits.json).

import { isLeft } from 'fp-ts/Either';
import * as fs from 'fs';
import * as t from 'io-ts';
import * as path from 'path';
import { NonEmptyString, NonNegativeInt, PositiveInt, PositiveNumber, Rgb, closed, formatErrors } from './codecs';
import { PipelineSpecError, TrainSpec, parsePipelineText } from './spec';

export const PretrainSpec = closed(
  'pretrain',
  {
    name: NonEmptyString,
    /** The input size is preprocess.size. */
    architecture: closed('architecture', { patchSize: PositiveInt, width: PositiveInt, depth: PositiveInt, heads: PositiveInt, mlpHidden: PositiveInt }, { layerNormEps: PositiveNumber }),
    data: closed('data', { train: NonEmptyString, test: NonEmptyString }),
    preprocess: closed('preprocess', { size: PositiveInt }, { mean: Rgb, std: Rgb, train: NonEmptyString, test: NonEmptyString }),
    train: TrainSpec,
    /** Where the checkpoint goes, relative to the file. */
    output: NonEmptyString,
  },
  { description: t.string, evaluate: closed('evaluate', {}, { every: NonNegativeInt, batchSize: PositiveInt }) },
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
  if (problems.length > 0) throw new PipelineSpecError(where, problems);
  return spec;
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
