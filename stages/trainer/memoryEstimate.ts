// Peak memory of a training step and of an evaluation batch, estimated from the shapes before
// anything runs, and the largest micro-batch that fits a limit. The per-activation coefficients
// are bytes per (example x token x width) and per (example x token x MLP width) of what the
// gradient tape keeps alive in a block, and what one block's forward holds at once outside it;
// they were fitted to tf.profile's peak bytes of real steps on the wasm backend (20 steps of tiny
// ViTs, five methods; within 10% for every method that trains blocks; 7 evaluation forwards) and are checked against
// fresh measurements in test/trainer/memoryEstimate.test.ts.

import { FUSED_ATTENTION_MAX_TOKENS } from '../../models/ops/kernelPolicy';

export interface ModelShape {
  readonly imageSize: number;
  readonly patchSize: number;
  readonly width: number;
  readonly mlpHidden: number;
  readonly heads: number;
  /** Blocks in the model after surgery (added blocks included). */
  readonly depth: number;
  /**
   * The backend runs vitpeft's own kernels (models/ops/backendKernels.ts: wasm), which keep less
   * for the backward pass than the stock route; absent means the stock route.
   */
  readonly ownKernels?: boolean;
}

export interface StepShape {
  readonly model: ModelShape;
  /** Blocks that run inside the gradient tape (all of them when the embeddings train). */
  readonly tapeBlocks: number;
  readonly trainableParams: number;
  /** Optimizer state tensors per trainable parameter: SGD with momentum 1, without 0, AdamW 2. */
  readonly optimizerSlots: number;
  /** Bytes already held (weights of the base and of the job's model, caches). */
  readonly residentBytes: number;
}

const FLOAT = 4;

/** Bytes of activations per example: per token x width and per token x MLP width (and, forward only, per head x token pair). */
export interface ActivationCoefficients {
  readonly tapePerTokenWidth: number;
  readonly tapePerTokenMlp: number;
  /** Per head x token pair of a tape block (the attention matrices the backward pass holds). */
  readonly tapePerHeadTokenPair?: number;
}

/** Bytes the tape keeps per example, per block, per token x width and per token x MLP width: the stock route. */
const STOCK_TAPE: ActivationCoefficients = { tapePerTokenWidth: 512, tapePerTokenMlp: 42 };
/**
 * The same with vitpeft's own kernels, for sequences the fused attention takes and for longer
 * ones (depthwise attention, fused GELU and LayerNorm). `node dist/bench/fitMemory.js` (24 steps
 * of 8 tiny ViTs: full, LoRA, block expansion) fitted 175 and 346 bytes per token x width and 8
 * per token x MLP width; the width terms are raised to 215 and 375 so that no test shape is
 * underestimated by more than 10%. (That fit split the shapes at 64 tokens; the fused kernels now
 * take up to 128, and the 65-token test shape stays within the test's bounds on them.) The attention matrices' term, 35 bytes per head x token pair,
 * is what ViT-B/16 at 224 px (197 tokens) needed beyond them (fitted before LayerNorm became one
 * kernel, with a width term of 400: full fine-tuning's tf.profile peak was 2.85 GiB at batch 1
 * and 3.77 GiB at batch 2, estimated 2.82 and 3.56 without it).
 */
const OWN_TAPE_FUSED_ATTENTION: ActivationCoefficients = { tapePerTokenWidth: 215, tapePerTokenMlp: 8 };
const OWN_TAPE_DEPTHWISE_ATTENTION: ActivationCoefficients = { tapePerTokenWidth: 375, tapePerTokenMlp: 8, tapePerHeadTokenPair: 35 };

/** The tape coefficients of a model's route. */
function tapeCoefficients(model: ModelShape): ActivationCoefficients {
  if (!model.ownKernels) return STOCK_TAPE;
  return tokens(model) <= FUSED_ATTENTION_MAX_TOKENS ? OWN_TAPE_FUSED_ATTENTION : OWN_TAPE_DEPTHWISE_ATTENTION;
}
/** Bytes of the transient forward outside the tape (embedding, one frozen block at a time). */
const FORWARD_PER_TOKEN_WIDTH = 24;
const FORWARD_PER_TOKEN_MLP = 20;
/** Gradients and the optimizer's temporaries, per trainable parameter. */
const UPDATE_PER_PARAM = 8;
/**
 * Per weight of a block inside the tape, trainable or not: the transposed copies the kernel-friendly
 * dense layers make for the backward pass. Too small to see on tiny models; calibrated on full
 * fine-tuning of ViT-B/16 at 224 px, batch 1 (tf.profile: 3.40 GB peak, 0.82 GB above the other terms).
 */
const TAPE_PER_BLOCK_WEIGHT = 10;
/** Forward only (evaluation): bytes per example per token x width, per token x MLP width, and per head x token x token (the attention matrices of one block). */
interface EvalCoefficients {
  readonly perTokenWidth: number;
  readonly perTokenMlp: number;
  readonly perHeadTokenPair: number;
}
const STOCK_EVAL: EvalCoefficients = { perTokenWidth: 95, perTokenMlp: 9, perHeadTokenPair: 20 };
/** With vitpeft's own kernels (fitted as OWN_TAPE_*). */
const OWN_EVAL_FUSED_ATTENTION: EvalCoefficients = { perTokenWidth: 20, perTokenMlp: 16, perHeadTokenPair: 1.4 };
const OWN_EVAL_DEPTHWISE_ATTENTION: EvalCoefficients = { perTokenWidth: 56, perTokenMlp: 16, perHeadTokenPair: 20 };

function evalCoefficients(model: ModelShape): EvalCoefficients {
  if (!model.ownKernels) return STOCK_EVAL;
  return tokens(model) <= FUSED_ATTENTION_MAX_TOKENS ? OWN_EVAL_FUSED_ATTENTION : OWN_EVAL_DEPTHWISE_ATTENTION;
}
/**
 * Per weight of a model that has been through a forward pass, outside the tensors: the wasm
 * backend's matrix-multiply kernels keep a packed copy of each weight matrix for as long as the
 * weights live. Not seen by tf.profile; measured as the wasm heap's growth beyond the tensors' peak
 * in the first forward of a random ViT-B/16 at 224 px (404 MiB for 86 M weights).
 */
const KERNEL_PER_WEIGHT = 5;

export function tokens(model: Pick<ModelShape, 'imageSize' | 'patchSize'>): number {
  const grid = Math.floor(model.imageSize / model.patchSize);
  return grid * grid + 1;
}

function imageBytes(model: ModelShape, examples: number): number {
  return examples * model.imageSize * model.imageSize * 3 * FLOAT;
}

/**
 * Peak bytes of one training step: resident weights and optimizer state, gradients, and one
 * micro-batch's activations (`tape` overrides the route's coefficients: bench/fitMemory.ts).
 */
export function trainStepBytes(shape: StepShape, batch: number, microBatch: number, tape: ActivationCoefficients = tapeCoefficients(shape.model)): number {
  const { model } = shape;
  const micro = Math.min(microBatch, batch);
  const n = tokens(model);
  const perExample =
    shape.tapeBlocks * n * (tape.tapePerTokenWidth * model.width + tape.tapePerTokenMlp * model.mlpHidden + (tape.tapePerHeadTokenPair ?? 0) * model.heads * n) +
    n * (FORWARD_PER_TOKEN_WIDTH * model.width + FORWARD_PER_TOKEN_MLP * model.mlpHidden);
  // Accumulating keeps a running sum of the gradients beside each micro-batch's own.
  const accumulator = micro < batch ? shape.trainableParams * FLOAT : 0;
  const blockWeights = 4 * model.width * model.width + 2 * model.width * model.mlpHidden;
  return (
    shape.residentBytes +
    shape.tapeBlocks * blockWeights * TAPE_PER_BLOCK_WEIGHT +
    shape.trainableParams * FLOAT * shape.optimizerSlots +
    shape.trainableParams * UPDATE_PER_PARAM +
    accumulator +
    imageBytes(model, batch) +
    micro * perExample
  );
}

/** Peak bytes of evaluating one batch (forward only), on top of what is resident. */
export function evalBatchBytes(model: ModelShape, batch: number): number {
  const n = tokens(model);
  const c = evalCoefficients(model);
  return imageBytes(model, batch) + batch * n * (c.perTokenWidth * model.width + c.perTokenMlp * model.mlpHidden + c.perHeadTokenPair * model.heads * n);
}

/** Bytes the backend's kernels hold beside a model's weights once it has run (its packed weight copies). */
export function kernelBytes(model: ModelShape): number {
  const blockWeights = 4 * model.width * model.width + 2 * model.width * model.mlpHidden;
  const patchWeights = model.patchSize * model.patchSize * 3 * model.width;
  return (model.depth * blockWeights + patchWeights) * KERNEL_PER_WEIGHT;
}

/** The largest n in [1, most] with fits(n), or 0 when even 1 does not fit (fits must be monotone). */
export function largestFitting(most: number, fits: (n: number) => boolean): number {
  let low = 0;
  let high = most;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (fits(middle)) low = middle;
    else high = middle - 1;
  }
  return low;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${(bytes / 2 ** 10).toFixed(0)} KiB`;
}
