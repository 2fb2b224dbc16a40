// DINO's loss (main_dino.py DINOLoss): for each global view t seen by the teacher and every view
// s != t of the student, the cross-entropy -sum softmax((g_t - c) / T_t) . log softmax(g_s / T_s),
// averaged over the batch and then over the pairs. Gradients are taken for the student's
// variables only, so the teacher's side (other variables) passes none.

import * as tf from '@tensorflow/tfjs-core';

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

/** studentLogits [views * B, K], teacherLogits [2 * B, K], centre [1, K]: the scalar loss. */
export function dinoLoss(studentLogits: tf.Tensor2D, teacherLogits: tf.Tensor2D, center: tf.Tensor, options: DinoLossOptions): tf.Scalar {
  const { views } = options;
  if (views < 2) throw new Error(`dinoLoss: at least the 2 global views are needed, got ${views}`);
  if (studentLogits.shape[0] % views !== 0) throw new Error(`dinoLoss: ${studentLogits.shape[0]} student rows do not split into ${views} views`);
  const batch = studentLogits.shape[0] / views;
  if (teacherLogits.shape[0] !== 2 * batch) throw new Error(`dinoLoss: the teacher has ${teacherLogits.shape[0]} rows, expected 2 global views of ${batch}`);
  return tf.tidy(() => {
    const teacher = tf.split(teacherDistribution(teacherLogits, center, options.teacherTemperature), 2, 0);
    const student = tf.split(tf.logSoftmax(tf.div(studentLogits, options.studentTemperature)), views, 0);
    const terms: tf.Scalar[] = [];
    for (let t = 0; t < 2; t++) {
      for (let s = 0; s < views; s++) {
        if (s !== t) terms.push(tf.mean(tf.sum(tf.mul(tf.neg(teacher[t]), student[s]), -1)));
      }
    }
    return tf.div(tf.addN(terms), terms.length) as tf.Scalar;
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
    const unit = tf.div(features, tf.maximum(tf.norm(features, 2, 1, true), 1e-12)) as tf.Tensor2D;
    const nearest = tf.tidy(() => {
      const dots = tf.matMul(unit, tf.transpose(unit));
      // A row is never its own neighbour (as DINOv2's fill_diagonal_(-1)).
      const masked = tf.where(tf.cast(tf.eye(rows), 'bool'), tf.fill([rows, rows], -2), dots);
      return tf.argMax(masked, 1);
    });
    // The neighbours' rows as a one-hot product (exact; wasm has no gradient kernel for gather).
    const neighbours = tf.matMul(tf.cast(tf.oneHot(nearest, rows), 'float32'), unit);
    const distance = tf.norm(tf.add(tf.sub(unit, neighbours), 1e-8), 2, 1);
    return tf.neg(tf.mean(tf.log(tf.add(distance, 1e-8)))) as tf.Scalar;
  });
}
