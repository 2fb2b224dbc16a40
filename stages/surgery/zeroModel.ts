// A model of a given architecture whose weights are zeros shared by all blocks: the shape of the
// network at almost no memory or time (one block's worth instead of depth blocks, no random draws),
// for counting what surgery makes trainable. Its outputs mean nothing.

import * as tf from '@tensorflow/tfjs-core';
import { Attention } from '../../models/vit/attention';
import { Block } from '../../models/vit/block';
import { VitConfig, gridSize, validateConfig } from '../../models/vit/config';
import { LayerNorm } from '../../models/vit/layerNorm';
import { Linear } from '../../models/vit/linear';
import { Mlp } from '../../models/vit/mlp';
import { parameter } from '../../models/vit/module';
import { PatchEmbed } from '../../models/vit/patchEmbed';
import { VisionTransformer } from '../../models/vit/visionTransformer';

export function zeroModel(config: VitConfig): VisionTransformer {
  validateConfig(config);
  const { width, heads, mlpHidden, layerNormEps, patchSize, inChannels } = config;
  const zeros = (inFeatures: number, outFeatures: number) => Linear.init(inFeatures, outFeatures, { std: 0 });
  // Clones share the prototype's storage, so the blocks together cost one block.
  const prototype = new Block(
    LayerNorm.init(width, layerNormEps),
    new Attention(zeros(width, 3 * width), zeros(width, width), heads),
    LayerNorm.init(width, layerNormEps),
    new Mlp(zeros(width, mlpHidden), zeros(mlpHidden, width)),
  );
  const blocks = Array.from({ length: config.depth }, () => prototype.clone());
  prototype.dispose();
  const grid = gridSize(config);
  const fanIn = patchSize * patchSize * inChannels;
  return new VisionTransformer(config, {
    patchEmbed: new PatchEmbed(parameter(tf.zeros([fanIn, width]) as tf.Tensor2D, true), parameter(tf.zeros([width]) as tf.Tensor1D, true), patchSize, inChannels),
    clsToken: parameter(tf.zeros([1, 1, width]) as tf.Tensor3D, true),
    posEmbed: parameter(tf.zeros([1, 1 + grid * grid, width]) as tf.Tensor3D, true),
    blocks,
    norm: LayerNorm.init(width, layerNormEps),
    head: config.numClasses > 0 ? zeros(width, config.numClasses) : null,
  });
}
