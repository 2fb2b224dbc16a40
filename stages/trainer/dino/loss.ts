// DINO's loss (main_dino.py DINOLoss): for each global view t seen by the teacher and every view
// s != t of the student, the cross-entropy -sum softmax((g_t - c) / T_t) . log softmax(g_s / T_s),
// averaged over the batch and then over the pairs. Gradients are taken for the student's
// variables only, so the teacher's side (other variables) passes none.

import * as tf from '@tensorflow/tfjs-core';
import { expOfNonPositive } from '../../../models/ops/gelu';
import { euclideanNorm, unitLength } from '../../../models/ops/norms';

export interface DinoLossOptions {
  /** Views of the student: its rows are [view 0 batch, view 1 batch, ...]; the first two are the global views. */
  readonly views: number;
  readonly studentTemperature: number;
  readonly teacherTemperature: number;
}

/** The teacher's sharpened, centred distribution: softmax((logits - centre) / T). */
export function teacherDistribution(teacherLogits: tf.Tensor2D, center: tf.Tensor, temperature: number): tf.Tensor2D {
  return tf.tidy(() => tf.softmax(tf.div(tf.sub(teacherLogits, center), temperature)) as tf.Tensor2D);
}

/**
 * log softmax over the last axis: tf.logSoftmax's formula and gradient, with its exponentials
 * through expOfNonPositive (both arguments are <= 0), which on wasm avoids the scalar Exp kernel
 * on the [views * B, K] logits, twice a step.
 */
const logSoftmaxRows = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const shifted = tf.sub(x, tf.max(x, -1, true));
  const value = tf.sub(shifted, tf.log(tf.sum(expOfNonPositive(shifted), -1, true)));
  save([value]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, [saved]: tf.Tensor[]) => tf.sub(dy, tf.mul(tf.sum(dy, -1, true), expOfNonPositive(saved))),
  };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * studentLogits [views * B, K], teacherLogits [2 * B, K], centre [1, K]: the scalar loss. The
 * pairs are summed as one product: student view s is paired with every teacher view but its own,
 * so its target rows are the sum of those teacher views' distributions (t1 for s = 0, t0 for s = 1,
 * t0 + t1 for a local view), and the loss is -sum(targets . log p_s) / (pairs * B).
 */
export function dinoLoss(studentLogits: tf.Tensor2D, teacherLogits: tf.Tensor2D, center: tf.Tensor, options: DinoLossOptions): tf.Scalar {
  const { views } = options;
  if (views < 2) throw new Error(`dinoLoss: at least the 2 global views are needed, got ${views}`);
  if (studentLogits.shape[0] % views !== 0) throw new Error(`dinoLoss: ${studentLogits.shape[0]} student rows do not split into ${views} views`);
  const batch = studentLogits.shape[0] / views;
  if (teacherLogits.shape[0] !== 2 * batch) throw new Error(`dinoLoss: the teacher has ${teacherLogits.shape[0]} rows, expected 2 global views of ${batch}`);
  return tf.tidy(() => {
    const [first, second] = tf.split(teacherDistribution(teacherLogits, center, options.teacherTemperature), 2, 0);
    const locals = views > 2 ? [tf.add(first, second)] : [];
    const targets = tf.concat([second, first, ...Array.from({ length: views - 2 }, () => locals[0])], 0);
    const logProbabilities = logSoftmaxRows(tf.div(studentLogits, options.studentTemperature));
    const pairs = 2 * (views - 1);
    // Row by row, then over the rows: one float32 running sum over all views * B * K terms (wasm's)
    // drifts by 1e-5 relative at the recipe's size. The gradient is the same either way.
    const rows = tf.sum(tf.mul(targets, logProbabilities), -1);
    return tf.div(tf.neg(tf.sum(rows)), pairs * batch) as tf.Scalar;
  });
}

/** The centre's EMA update: c <- m c + (1 - m) mean over rows of the teacher's logits. */
export function updatedCenter(center: tf.Tensor, teacherLogits: tf.Tensor2D, momentum: number): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(center, momentum), tf.mul(tf.mean(teacherLogits, 0, true), 1 - momentum)));
}

function entropies(probabilities: tf.Tensor2D): tf.Tensor {
  return tf.neg(tf.sum(tf.mul(probabilities, tf.log(tf.maximum(probabilities, 1e-12))), -1));
}

/**
 * The teacher's collapse monitor, in nats: the mean entropy of its rows (log K: uniform, every
 * image answered alike) and the entropy of its batch-mean distribution (0: one prototype for all).
 */
export function teacherEntropies(probabilities: tf.Tensor2D): { rows: number; batch: number } {
  const values = tf.tidy(() => tf.stack([tf.mean(entropies(probabilities)), tf.reshape(entropies(tf.mean(probabilities, 0, true) as tf.Tensor2D), [])]));
  const [rows, batch] = values.dataSync();
  values.dispose();
  return { rows, batch };
}

/**
 * DINOv2's KoLeo regulariser on one view's features [B, D] (dinov2/loss/koleo_loss.py): the rows
 * are L2-normalised, each one's nearest other row is found by the largest dot product, and the
 * loss is -mean log(||x - x_nn + 1e-8|| + 1e-8). Low when every feature has a near neighbour, so
 * minimising it spreads the batch over the sphere. The neighbour choice passes no gradient.
 */
export function koleoLoss(features: tf.Tensor2D): tf.Scalar {
  const rows = features.shape[0];
  if (rows < 2) throw new Error(`koleoLoss: a nearest neighbour needs at least 2 rows, got ${rows}`);
  return tf.tidy(() => {
    const unit = unitLength(features, 1);
    const nearest = tf.tidy(() => {
      const dots = tf.matMul(unit, tf.transpose(unit));
      // A row is never its own neighbour (as DINOv2's fill_diagonal_(-1)).
      const masked = tf.where(tf.cast(tf.eye(rows), 'bool'), tf.fill([rows, rows], -2), dots);
      return tf.argMax(masked, 1);
    });
    // The neighbours' rows as a one-hot product (exact; wasm has no gradient kernel for gather).
    const neighbours = tf.matMul(tf.cast(tf.oneHot(nearest, rows), 'float32'), unit);
    const distance = euclideanNorm(tf.add(tf.sub(unit, neighbours), 1e-8), 1);
    return tf.neg(tf.mean(tf.log(tf.add(distance, 1e-8)))) as tf.Scalar;
  });
}
