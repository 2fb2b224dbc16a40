// The training forward pass, split at the first block that has anything to train: the frozen
// prefix runs outside the gradient tape (no activations kept for backprop, no gradient work),
// the rest inside. When the embeddings themselves train (full fine-tuning) there is no frozen
// prefix: embedding and every block run inside the tape. Only the class-token rows go through
// the last block's MLP, the final norm and the head (VisionTransformer.classTokenAfter).

import * as tf from '@tensorflow/tfjs-core';
import { ForwardContext } from '../../models/vit/module';
import { VisionTransformer } from '../../models/vit/visionTransformer';

export interface PrefixOutput {
  readonly rows: tf.Tensor2D;
  readonly batch: number;
  readonly tokens: number;
}

/** Whether the patch embedding, class token or position embeddings train (then nothing runs outside the tape). */
export function embeddingsTrain(model: VisionTransformer): boolean {
  return [model.clsToken, model.posEmbed, ...model.patchEmbed.namedParameters().map(([, variable]) => variable)].some((variable) => variable.trainable);
}

/** Embeddings and blocks [0, from): call outside the tape when none of it trains. */
export function forwardPrefix(model: VisionTransformer, images: tf.Tensor4D, from: number, context: ForwardContext = {}): PrefixOutput {
  let shape = { batch: 0, tokens: 0 };
  const rows = tf.tidy(() => {
    const embedded = model.embed(images);
    shape = { batch: embedded.batch, tokens: embedded.tokens };
    return model.forwardBlocks(embedded.rows, embedded.batch, embedded.tokens, context, 0, from);
  });
  return { rows, ...shape };
}

/** Blocks [from, depth) (the last on the class tokens only), final norm, head: the logits. */
export function forwardSuffix(model: VisionTransformer, prefix: PrefixOutput, from: number, context: ForwardContext = {}): tf.Tensor2D {
  return tf.tidy(() => model.forwardHead(model.classTokenAfter(prefix.rows, prefix.batch, prefix.tokens, context, from)));
}
