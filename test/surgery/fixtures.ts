// Tiny models, images and training steps shared by the surgery tests.

import * as tf from '@tensorflow/tfjs';
import { VitConfig } from '../../models/vit/config';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { SurgeryResult } from '../../stages/surgery';

/** 16 px images in patches of 8: 4 patches and a class token. */
export function tinyConfig(depth = 4): VitConfig {
  return { imageSize: 16, patchSize: 8, inChannels: 3, width: 32, depth, heads: 2, mlpHidden: 64, numClasses: 0, layerNormEps: 1e-6 };
}

/** A tiny model whose every parameter (norms and biases included) is perturbed, so nothing is trivially 0 or 1. */
export function tinyModel(depth = 4, seed = 7): VisionTransformer {
  const model = VisionTransformer.init(tinyConfig(depth));
  tf.tidy(() => {
    model.namedParameters().forEach(([, variable], i) => {
      variable.assign(tf.add(variable, tf.randomNormal(variable.shape, 0, 0.05, 'float32', seed * 1000 + i)));
    });
  });
  return model;
}

export function tinyImages(batch = 3, seed = 11): tf.Tensor4D {
  return tf.randomNormal([batch, 16, 16, 3], 0, 1, 'float32', seed);
}

export function oneHotLabels(batch: number, classes: number): tf.Tensor2D {
  return tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % classes), 'int32'), classes) as tf.Tensor2D);
}

/** Copies of every parameter's values, by name. */
export function snapshot(model: VisionTransformer): Map<string, Float32Array> {
  return new Map(model.namedParameters().map(([name, variable]) => [name, Float32Array.from(variable.dataSync() as Float32Array)]));
}

export function bitEqual(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** One SGD step on cross-entropy over the result's trainable variables; returns nothing, leaks nothing. */
export function trainStep(result: SurgeryResult, optimizer: tf.Optimizer, images: tf.Tensor4D, labels: tf.Tensor2D): void {
  const cost = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, result.model.forward(images)) as tf.Scalar, true, result.trainable);
  cost?.dispose();
}
