// DINO's projection head (vision_transformer.py DINOHead) on the class token: a 3-layer MLP with
// GELU (hidden, hidden, bottleneck), optionally a batch normalisation after each hidden layer
// (DINOHead's use_bn: batch statistics, as DINO's networks are never put in eval mode), the
// bottleneck L2-normalised, then a weight-normalised linear layer without bias to K prototypes:
// column k of the weight is g_k v_k / |v_k|, with the gain g fixed to 1 (normLastLayer) or
// trained from 1. Weights are stored [in, out].

import * as tf from '@tensorflow/tfjs-core';
import { gelu } from '../../../models/ops/gelu';
import { Linear } from '../../../models/vit/linear';
import { InitScheme, Module, NamedParameter, SeedSource, normalWeights, parameter, prefixed, pytorchDefaultUniform } from '../../../models/vit/module';
import { euclideanNorm, unitLength } from '../../../models/ops/norms';

export interface DinoHeadShape {
  readonly inDim: number;
  readonly hiddenDim: number;
  readonly bottleneckDim: number;
  readonly outDim: number;
  readonly normLastLayer: boolean;
  /** A batch normalisation after each hidden layer (DINO's use_bn_in_head). */
  readonly batchNorm: boolean;
}

/** PyTorch's BatchNorm1d in training mode: each column standardised by its batch mean and biased variance, then scaled and shifted. */
export function batchNormalize(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5): tf.Tensor2D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, 0);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), gamma), beta) as tf.Tensor2D;
  });
}

/** A batch normalisation's scale (from 1) and shift (from 0). */
interface BatchNormParameters {
  readonly gamma: tf.Variable<tf.Rank.R1>;
  readonly beta: tf.Variable<tf.Rank.R1>;
}

export class DinoHead implements Module {
  private constructor(
    readonly layers: readonly [Linear, Linear, Linear],
    /** The last layer's direction v: [bottleneck, K]. */
    readonly lastV: tf.Variable<tf.Rank.R2>,
    /** The last layer's gain g: [K], only when it trains. */
    readonly lastG: tf.Variable<tf.Rank.R1> | null,
    /** After the first and the second hidden layer, when the head has batch normalisation. */
    readonly norms: readonly [BatchNormParameters, BatchNormParameters] | null,
  ) {}

  /**
   * Weights of std 0.02 and zero biases as DINOHead._init_weights (drawn as `scheme` draws its
   * normal weights); the last layer's direction the same normal ('vitpeft') or, as DINOHead makes it
   * after _init_weights, PyTorch's Linear default ('dino'); the gain starts at 1.
   */
  static init(shape: DinoHeadShape, seeds: SeedSource, scheme: InitScheme = 'vitpeft'): DinoHead {
    const layers: [Linear, Linear, Linear] = [
      Linear.init(shape.inDim, shape.hiddenDim, { seed: seeds(), scheme }),
      Linear.init(shape.hiddenDim, shape.hiddenDim, { seed: seeds(), scheme }),
      Linear.init(shape.hiddenDim, shape.bottleneckDim, { seed: seeds(), scheme }),
    ];
    const lastShape: [number, number] = [shape.bottleneckDim, shape.outDim];
    const lastV = parameter(
      scheme === 'dino' ? pytorchDefaultUniform<tf.Rank.R2>(lastShape, shape.bottleneckDim, seeds()) : normalWeights<tf.Rank.R2>(lastShape, 0.02, scheme, seeds()),
      true,
    );
    const lastG = shape.normLastLayer ? null : parameter(tf.ones([shape.outDim]) as tf.Tensor1D, true);
    const norm = (): BatchNormParameters => ({ gamma: parameter(tf.ones([shape.hiddenDim]) as tf.Tensor1D, true), beta: parameter(tf.zeros([shape.hiddenDim]) as tf.Tensor1D, true) });
    return new DinoHead(layers, lastV, lastG, shape.batchNorm ? [norm(), norm()] : null);
  }

  /** The last layer's variables (frozen during the first freezeLastLayerSteps). */
  get lastLayer(): tf.Variable[] {
    return this.lastG ? [this.lastV, this.lastG] : [this.lastV];
  }

  /** Class tokens [batch, width] to prototype logits [batch, K]. */
  forward(features: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const [fc1, fc2, fc3] = this.layers;
      const hidden = (x: tf.Tensor2D, at: 0 | 1): tf.Tensor2D => gelu(this.norms ? batchNormalize(x, this.norms[at].gamma, this.norms[at].beta) : x);
      const bottleneck = unitLength(fc3.forward(hidden(fc2.forward(hidden(fc1.forward(features), 0)), 1)), 1);
      const columns = tf.div(this.lastV, tf.maximum(euclideanNorm(this.lastV, 0), 1e-12));
      const weight = this.lastG ? tf.mul(columns, this.lastG) : columns;
      return tf.matMul(bottleneck, weight) as tf.Tensor2D;
    });
  }

  /** PyTorch's names: mlp.0, 2, 4 without batch normalisation; mlp.0, (1), 3, (4), 6 with it. */
  namedParameters(): NamedParameter[] {
    const norm = (at: number, p: BatchNormParameters): NamedParameter[] => [[`mlp.${at}.weight`, p.gamma], [`mlp.${at}.bias`, p.beta]];
    if (this.norms) {
      return [
        ...prefixed('mlp.0', this.layers[0].namedParameters()),
        ...norm(1, this.norms[0]),
        ...prefixed('mlp.3', this.layers[1].namedParameters()),
        ...norm(4, this.norms[1]),
        ...prefixed('mlp.6', this.layers[2].namedParameters()),
        ['last_layer.weight_v', this.lastV],
        ...(this.lastG ? [['last_layer.weight_g', this.lastG] as const] : []),
      ];
    }
    return [
      ...prefixed('mlp.0', this.layers[0].namedParameters()),
      ...prefixed('mlp.2', this.layers[1].namedParameters()),
      ...prefixed('mlp.4', this.layers[2].namedParameters()),
      ['last_layer.weight_v', this.lastV],
      ...(this.lastG ? [['last_layer.weight_g', this.lastG] as const] : []),
    ];
  }

  /** A copy with its own variables holding the same values (the teacher's head at the start). */
  clone(): DinoHead {
    const norms = this.norms?.map((p) => ({ gamma: parameter(p.gamma), beta: parameter(p.beta) })) as [BatchNormParameters, BatchNormParameters] | undefined;
    return new DinoHead([this.layers[0].clone(), this.layers[1].clone(), this.layers[2].clone()], parameter(this.lastV), this.lastG ? parameter(this.lastG) : null, norms ?? null);
  }

  dispose(): void {
    for (const layer of this.layers) layer.dispose();
    this.lastV.dispose();
    this.lastG?.dispose();
    for (const p of this.norms ?? []) tf.dispose([p.gamma, p.beta]);
  }
}
