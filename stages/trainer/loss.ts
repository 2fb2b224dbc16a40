// Cross-entropy in its soft-target form (timm's SoftTargetCrossEntropy on one-hot labels, as the
// paper's code uses), with optional label smoothing: targets (1 - e) one-hot + e / classes.

import * as tf from '@tensorflow/tfjs-core';

export function softTargets(labels: tf.Tensor1D, classes: number, labelSmoothing = 0): tf.Tensor2D {
  return tf.tidy(() => {
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), classes) as tf.Tensor2D;
    if (labelSmoothing === 0) return tf.cast(oneHot, 'float32');
    return tf.add(tf.mul(tf.cast(oneHot, 'float32'), 1 - labelSmoothing), labelSmoothing / classes);
  });
}

/** Mean over the batch of -sum(targets * log_softmax(logits)). */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1))) as tf.Scalar);
}
