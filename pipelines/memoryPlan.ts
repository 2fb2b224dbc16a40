// The memory plan a job makes before its first step: the peak of a training step estimated from
// the shapes (stages/trainer/memoryEstimate.ts), compared with what the backend can hold, and the
// micro-batch chosen — the whole batch when it fits ("auto" keeps the built-in default's results
// byte for byte), else the largest that fits. An explicit train.microBatch that cannot fit is
// refused before training. The evaluation batch is planned the same way, beside what is resident
// when it runs (the weights, the kernels' packed copies of them, the optimizer state, the frozen-
// prefix cache): evaluate.batchSize "auto" (the default) takes the largest that fits, a number
// that cannot fit is refused. Forward only: the evaluation batch changes memory, not the results.

import * as tf from '@tensorflow/tfjs-core';
import * as os from 'os';
import type { VitConfig } from '../models/vit/config';
import { OWN_KERNELS, provided } from '../models/ops/backendKernels';
import { ModelShape, StepShape, evalBatchBytes, formatBytes, kernelBytes, largestFitting, trainStepBytes } from '../stages/trainer/memoryEstimate';
import type { SurgeryResult } from '../stages/surgery/applySurgery';
import { embeddingsTrain } from '../stages/trainer/forward';
import type { OptimizerSpec } from '../stages/trainer/optimizer';
import type { Job } from './job';

/**
 * The wasm backend's heap can grow to 4 GiB; 40% is kept free for fragmentation and for what the
 * estimate misses (a ViT-B/16 evaluation planned at 2.9 GB of tensors took the process past 4.1 GB
 * resident and still growing), because the threaded build hangs rather than fails at its ceiling.
 */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;
const WASM_USABLE = 0.6;
/** Native backends: this share of the machine's free memory at the time of the plan. */
const FREE_MEMORY_USABLE = 0.8;

export interface MemoryLimit {
  readonly bytes: number;
  readonly description: string;
}

/** What the running backend may use: wasm its heap (with headroom), tensorflow and cpu the machine's free memory. */
export function memoryLimit(backend = tf.getBackend()): MemoryLimit {
  if (backend === 'wasm') return { bytes: WASM_HEAP_BYTES * WASM_USABLE, description: `wasm heap ${formatBytes(WASM_HEAP_BYTES)} less ${Math.round((1 - WASM_USABLE) * 100)}% headroom` };
  const free = os.freemem();
  return { bytes: free * FREE_MEMORY_USABLE, description: `${Math.round(FREE_MEMORY_USABLE * 100)}% of the ${formatBytes(free)} of free memory (${backend})` };
}

/** A micro-batch that cannot fit, refused before training. */
export class MemoryPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MemoryPlanError';
  }
}

export interface MemoryPlan {
  readonly microBatch: number;
  readonly stepBytes: number;
  readonly limit: MemoryLimit;
  /** The job's evaluation batch, when the plan was asked for one. */
  readonly evaluation?: EvaluationPlan;
  /** One line for the console: the micro-batch chosen and the estimate (and the evaluation's). */
  readonly summary: string;
}

/** evaluate.batchSize as the pipeline gives it. */
export interface EvaluationBatchRequest {
  /** A number, or "auto": the largest batch that fits, up to `most`. */
  readonly requested: number | 'auto';
  readonly most: number;
}

export interface EvaluationPlan {
  readonly batchSize: number;
  /** Estimated peak of evaluating one batch, what is resident included. */
  readonly bytes: number;
  readonly summary: string;
}

/** A model's shape for the memory estimate, on the running backend's route (its own kernels or the stock ones). */
export function modelShape(config: VitConfig, depth = config.depth): ModelShape {
  return { imageSize: config.imageSize, patchSize: config.patchSize, width: config.width, mlpHidden: config.mlpHidden, heads: config.heads, depth, ownKernels: OWN_KERNELS.every(provided) };
}

export function optimizerSlots(spec: OptimizerSpec): number {
  if (spec.optimizer === 'adamw') return 2;
  return (spec.momentum ?? 0) > 0 ? 1 : 0;
}

/** Chooses (auto) or checks (a number) the micro-batch of a job's steps. */
export function planMicroBatch(shape: StepShape, batchSize: number, requested: number | 'auto', limit: MemoryLimit, method: string): MemoryPlan {
  const fits = (micro: number) => trainStepBytes(shape, batchSize, micro) <= limit.bytes;
  const largest = largestFitting(batchSize, fits);
  if (requested !== 'auto' && !fits(requested)) {
    const estimate = formatBytes(trainStepBytes(shape, batchSize, requested));
    const advice = largest > 0 ? `the largest that fits is ${largest}` : `not even 1 fits: use a smaller model, image size or method`;
    throw new MemoryPlanError(`train.microBatch: ${requested} does not fit ${method}'s step on this backend (estimated ${estimate}, limit ${formatBytes(limit.bytes)}: ${limit.description}); ${advice}`);
  }
  const microBatch = requested === 'auto' ? Math.max(1, largest) : Math.min(requested, batchSize);
  const stepBytes = trainStepBytes(shape, batchSize, microBatch);
  const how = microBatch >= batchSize ? `whole batches of ${batchSize}` : `batches of ${batchSize} as ${Math.ceil(batchSize / microBatch)} micro-batches of ${microBatch}`;
  const warning = stepBytes > limit.bytes ? ' — more than the limit: it may run out of memory' : '';
  return { microBatch, stepBytes, limit, summary: `memory plan: ${how} (train.microBatch ${requested}), step estimated at ${formatBytes(stepBytes)} of ${formatBytes(limit.bytes)} (${limit.description})${warning}` };
}

/**
 * Chooses (auto) or checks (a number) the evaluation batch of `what` beside `residentBytes`; a
 * number that cannot fit is refused in one line naming evaluate.batchSize and the largest that fits.
 */
export function planEvaluationBatch(model: ModelShape, request: EvaluationBatchRequest, residentBytes: number, limit: MemoryLimit, what: string): EvaluationPlan {
  const { requested } = request;
  const bytes = (batch: number) => residentBytes + evalBatchBytes(model, batch);
  const fits = (batch: number) => bytes(batch) <= limit.bytes;
  const largest = largestFitting(requested === 'auto' ? request.most : requested, fits);
  if (requested !== 'auto' && !fits(requested)) {
    const advice = largest > 0 ? `the largest that fits is ${largest} (or leave it out: "auto" takes the largest)` : 'not even 1 fits: use a smaller model or image size';
    throw new MemoryPlanError(`evaluate.batchSize: ${requested} does not fit ${what} on this backend (estimated ${formatBytes(bytes(requested))}, limit ${formatBytes(limit.bytes)}: ${limit.description}); ${advice}`);
  }
  const batchSize = requested === 'auto' ? Math.max(1, largest) : requested;
  const warning = bytes(batchSize) > limit.bytes ? ' — more than the limit: it may run out of memory' : '';
  return { batchSize, bytes: bytes(batchSize), summary: `evaluation batches of ${batchSize} (evaluate.batchSize ${requested}) estimated at ${formatBytes(bytes(batchSize))}${warning}` };
}

/** The pretrained model's evaluation before any job: the base's weights and their kernels' copies resident. */
export function baselineEvaluationPlan(config: VitConfig, request: EvaluationBatchRequest, limit = memoryLimit()): EvaluationPlan {
  const model = modelShape(config);
  const plan = planEvaluationBatch(model, request, tf.memory().numBytes + kernelBytes(model), limit, "the pretrained model's evaluation");
  return { ...plan, summary: `memory plan: the pretrained model's ${plan.summary} of ${formatBytes(limit.bytes)} (${limit.description})` };
}

/** What a job's evaluations hold beside the tensors resident at its plan: its frozen-prefix cache's budget. */
export interface JobEvaluationRequest extends EvaluationBatchRequest {
  readonly cacheBytes: number;
}

/**
 * A job's plan, made after its surgery (the base and the job's model are resident then). With an
 * evaluation request it also plans the job's evaluation batch: beside the two models, the
 * kernels' copies of both, the optimizer state and the frozen-prefix cache.
 */
export function jobMemoryPlan(job: Pick<Job, 'method' | 'settings' | 'microBatch'>, surgery: SurgeryResult, limit = memoryLimit(), evaluation?: JobEvaluationRequest): MemoryPlan {
  const { model } = surgery;
  const depth = model.blocks.length;
  const shape: StepShape = {
    model: modelShape(model.config, depth),
    tapeBlocks: embeddingsTrain(model) ? depth : depth - surgery.firstTrainableBlock,
    trainableParams: surgery.trainableCount,
    optimizerSlots: optimizerSlots(job.settings),
    residentBytes: tf.memory().numBytes,
  };
  const plan = planMicroBatch(shape, job.settings.batchSize, job.microBatch ?? 'auto', limit, job.method);
  if (!evaluation) return plan;
  const optimizerState = shape.trainableParams * 4 * shape.optimizerSlots;
  const kernels = kernelBytes(modelShape(model.config)) + kernelBytes(shape.model);
  const evaluationPlan = planEvaluationBatch(shape.model, evaluation, shape.residentBytes + optimizerState + kernels + evaluation.cacheBytes, limit, `${job.method}'s evaluation`);
  return { ...plan, evaluation: evaluationPlan, summary: `${plan.summary}; ${evaluationPlan.summary}` };
}
