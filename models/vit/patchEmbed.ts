// Patch embedding: non-overlapping p x p patches, each flattened in (row, column, channel) order
// and projected by a [p*p*channels, width] matrix — the same map as PyTorch's Conv2d with
// stride p, written as reshape + transpose + 2-D matMul because the wasm backend has no
// convolution filter gradient and runs plain matMul fastest.

import * as tf from '@tensorflow/tfjs-core';
import { affine } from '../ops/affine';
import { InitScheme, Module, NamedParameter, SeedSource, UNSEEDED, normalWeights, parameter, pytorchDefaultUniform } from './module';

export class PatchEmbed implements Module {
  constructor(
    /** [patch * patch * channels, width], rows in (kh, kw, channel) order. */
    readonly weight: tf.Variable<tf.Rank.R2>,
    readonly bias: tf.Variable<tf.Rank.R1>,
    readonly patchSize: number,
    readonly inChannels: number,
  ) {
    const expected = patchSize * patchSize * inChannels;
    if (weight.shape[0] !== expected) {
      throw new Error(`PatchEmbed: weight has ${weight.shape[0]} rows, expected ${patchSize}*${patchSize}*${inChannels} = ${expected}`);
    }
  }

  /**
   * 'vitpeft': a linear layer's init (normal 0.02 truncated at 2 sigma, zero bias; one seed).
   * 'dino': PyTorch's Conv2d default, as DINO and timm leave the patch embedding: weight and bias
   * uniform in +-1/sqrt(fan-in), fan-in = patch * patch * channels (two seeds).
   */
  static init(patchSize: number, inChannels: number, width: number, seeds: SeedSource = UNSEEDED, scheme: InitScheme = 'vitpeft'): PatchEmbed {
    const fanIn = patchSize * patchSize * inChannels;
    const [weight, bias] =
      scheme === 'dino'
        ? [pytorchDefaultUniform<tf.Rank.R2>([fanIn, width], fanIn, seeds()), pytorchDefaultUniform<tf.Rank.R1>([width], fanIn, seeds())]
        : [normalWeights<tf.Rank.R2>([fanIn, width], 0.02, scheme, seeds()), tf.zeros([width]) as tf.Tensor1D];
    return new PatchEmbed(parameter(weight, true), parameter(bias, true), patchSize, inChannels);
  }

  get width(): number {
    return this.weight.shape[1];
  }

  /** images: [batch, height, width, channels] -> rows [batch * gridH * gridW, width]. */
  forward(images: tf.Tensor4D): tf.Tensor2D {
    const [batch, height, width, channels] = images.shape;
    const p = this.patchSize;
    if (channels !== this.inChannels) throw new Error(`PatchEmbed: images have ${channels} channels, expected ${this.inChannels}`);
    if (height % p !== 0 || width % p !== 0) throw new Error(`PatchEmbed: image size ${height}x${width} is not a multiple of the patch size ${p}`);
    const gridH = height / p;
    const gridW = width / p;
    return tf.tidy(() => {
      const patches = tf.reshape(
        tf.transpose(tf.reshape(images, [batch, gridH, p, gridW, p, channels]), [0, 1, 3, 2, 4, 5]),
        [batch * gridH * gridW, p * p * channels],
      ) as tf.Tensor2D;
      return affine(patches, this.weight, this.bias);
    });
  }

  namedParameters(): NamedParameter[] {
    return [['proj.weight', this.weight], ['proj.bias', this.bias]];
  }

  clone(): PatchEmbed {
    return new PatchEmbed(parameter(this.weight), parameter(this.bias), this.patchSize, this.inChannels);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}
