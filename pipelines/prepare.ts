// Before a run's jobs: the pretrained model loaded once, the data opened, the transforms and the
// evaluation set-up resolved, the run record (fresh runs) and spec.json written.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeFileAtomic } from '../common/atomicWrite';
import { loadVit } from '../models/checkpoint/vitCheckpoint';
import { Linear } from '../models/vit/linear';
import { VisionTransformer } from '../models/vit/visionTransformer';
import { DatasetSource } from '../stages/dataset/source';
import { Transform, TransformSpec, namedTransform, resolveTransform } from '../stages/dataset/transforms';
import { resolveDataPath } from '../stages/dataset/dataUri';
import { defaultCacheDir } from '../stages/dataset/downloads';
import type { EvaluationData } from '../stages/evaluator/stage';
import { DEFAULT_LINEAR_PROBE, LinearProbeSettings } from '../stages/evaluator/linearProbe';
import type { RunOptions, Stages } from './job';
import { CHECKPOINT_FOLDER, writeRunRecord } from './resume';
import { LoadedPipeline } from './spec';
import { EvaluationBatchRequest, baselineEvaluationPlan } from './memoryPlan';

/** What a job keeps of frozen-block activations by default (evaluate.frozenPrefixMB). */
export const DEFAULT_FROZEN_PREFIX_MB = 256;

export const DEFAULT_KNN = { k: [10, 20, 100, 200], temperature: 0.07, headline: 20 } as const;

/**
 * A checkpoint path from a pipeline file: `cache:NAME/FILE` is in the download cache (where
 * `vitpeft data fetch` puts it, e.g. cache:dino-vitb16/model.safetensors), `~/` is the home
 * folder, and other relative paths are relative to the file.
 */
export function resolveCheckpointPath(given: string, baseDir: string): string {
  if (given.startsWith('cache:')) return path.join(defaultCacheDir(), given.slice('cache:'.length));
  return resolveDataPath(given, baseDir);
}

/** Named transform at the pipeline's size, with the pipeline's mean/std where given. */
export function transformFor(name: string, size: number, normalization?: { mean?: readonly number[]; std?: readonly number[] }): Transform {
  const spec: TransformSpec = namedTransform(name, { size });
  return resolveTransform({ ...spec, mean: normalization?.mean ?? spec.mean, std: normalization?.std ?? spec.std });
}

/** evaluate.linearProbe as the evaluator's settings: off unless given, defaults filled in. */
export function linearProbeSettings(given: boolean | Partial<LinearProbeSettings> | undefined): LinearProbeSettings | undefined {
  if (given === undefined || given === false) return undefined;
  return { ...DEFAULT_LINEAR_PROBE, ...(given === true ? {} : given) };
}

/** What every job of a run shares: the base model, the data, the evaluation set-up. */
export interface Prepared {
  readonly base: VisionTransformer;
  readonly train: DatasetSource;
  readonly trainTransform: Transform;
  readonly evaluation: EvaluationData;
  readonly numClasses: number;
  readonly frozenHead: Linear | null;
  readonly knnHeadline: number;
  /** Bytes a job may keep of frozen-block activations between evaluations. */
  readonly frozenPrefixBytes: number;
  /** When jobs evaluate: every N steps (0: only after the last) and after the listed steps. */
  readonly schedule: { readonly every: number; readonly at: readonly number[] };
  /** evaluate.batchSize: each job plans its own evaluation batch from it (evaluation.batchSize is the baseline's). */
  readonly evaluationBatch: EvaluationBatchRequest;
  /** The baseline evaluation's memory plan, for the console. */
  readonly evaluationPlan: string;
  dispose(): void;
}

export async function prepare(stages: Stages, loaded: LoadedPipeline, options: RunOptions): Promise<Prepared> {
  const { spec, baseDir } = loaded;
  fs.mkdirSync(options.outDir, { recursive: true });
  if (!options.resume) {
    // A fresh run: what an earlier run left here must not be resumed into this one.
    fs.rmSync(path.join(options.outDir, CHECKPOINT_FOLDER), { recursive: true, force: true });
    writeRunRecord(options.outDir, loaded, options);
  }
  const checkpoint = resolveCheckpointPath(spec.model.checkpoint, baseDir);
  const { model: base } = loadVit(checkpoint, {
    heads: spec.model.heads,
    layerNormEps: spec.model.layerNormEps,
    allowUnknownKeys: spec.model.allowUnknownKeys,
    imageSize: spec.preprocess.size,
  });
  try {
    const open = (uri: string) => stages.dataset.open(uri, { baseDir });
    const train = await open(spec.data.train);
    const test = await open(spec.data.test);
    const retention = spec.data.retention ? { bank: await open(spec.data.retention.bank), query: await open(spec.data.retention.query) } : undefined;
    const numClasses = Math.max(train.numClasses, test.numClasses);
    if (numClasses < 2) throw new Error(`${spec.data.train}: the new task needs at least 2 classes, the data has ${numClasses}`);
    const size = spec.preprocess.size;
    const normalization = { mean: spec.preprocess.mean, std: spec.preprocess.std };
    const trainTransform = transformFor(spec.preprocess.train ?? 'paper-train', size, normalization);
    const testTransform = transformFor(spec.preprocess.test ?? 'paper-test', size, normalization);
    const retentionTransform = spec.preprocess.retention ? transformFor(spec.preprocess.retention, size) : testTransform;
    const knn = { k: spec.evaluate?.knn?.k ?? [...DEFAULT_KNN.k], temperature: spec.evaluate?.knn?.temperature ?? DEFAULT_KNN.temperature };
    const knnHeadline = spec.evaluate?.knn?.headline ?? (knn.k.includes(DEFAULT_KNN.headline) ? DEFAULT_KNN.headline : knn.k[0]);
    const linearProbe = linearProbeSettings(spec.evaluate?.linearProbe);
    // The pretrained checkpoint's own head can only be scored on queries labelled in its classes.
    const headClasses = base.head?.outFeatures ?? 0;
    const frozenHead = retention && base.head && retention.query.numClasses <= headClasses ? base.head : null;
    const evaluationBatch: EvaluationBatchRequest = { requested: spec.evaluate?.batchSize ?? 'auto', most: Math.max(spec.train.batchSize, 32) };
    const baselinePlan = baselineEvaluationPlan(base.config, evaluationBatch);
    const evaluation: EvaluationData = {
      test: { source: test, transform: testTransform },
      retention: retention ? { ...retention, transform: retentionTransform } : undefined,
      knn,
      ...(linearProbe && retention ? { linearProbe } : {}),
      // k-NN features beyond a quarter of the machine's memory (at most 2 GiB) go to a file in the run folder.
      featureStore: { memoryBudgetBytes: Math.min(2 * 2 ** 30, os.totalmem() / 4), spillDir: path.join(options.outDir, 'features'), precision: spec.evaluate?.knn?.precision },
      batchSize: baselinePlan.batchSize,
    };
    fs.mkdirSync(options.outDir, { recursive: true });
    writeFileAtomic(
      path.join(options.outDir, 'spec.json'),
      `${JSON.stringify(
        {
          ...spec,
          resolved: {
            file: loaded.file,
            checkpoint,
            backend: options.backend,
            model: base.config,
            data: { train: train.description, test: test.description, bank: retention?.bank.description, query: retention?.query.description },
            transforms: { train: trainTransform.description, test: testTransform.description, retention: retentionTransform.description },
            knn: { ...knn, headline: knnHeadline },
            ...(linearProbe ? { linearProbe } : {}),
          },
        },
        null,
        2,
      )}\n`,
    );
    const frozenPrefixBytes = (spec.evaluate?.frozenPrefixMB ?? DEFAULT_FROZEN_PREFIX_MB) * 2 ** 20;
    const schedule = { every: spec.evaluate?.every ?? 0, at: spec.evaluate?.at ?? [] };
    return { base, train, trainTransform, evaluation, numClasses, frozenHead, knnHeadline, frozenPrefixBytes, schedule, evaluationBatch, evaluationPlan: baselinePlan.summary, dispose: () => base.dispose() };
  } catch (error) {
    base.dispose();
    throw error;
  }
}
