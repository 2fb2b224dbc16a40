// The training forward pass, split at the first block that has anything to train: the frozen
// prefix runs outside the gradient tape (no activations kept for backprop, no gradient work),
// the rest inside. When the embeddings themselves train (full fine-tuning) there is no frozen
// prefix: embedding and every block run inside the tape. Only the class-token rows go through
// the final norm and the head.

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

/** Blocks [from, depth), final norm on the class tokens, head: the logits. */
export function forwardSuffix(model: VisionTransformer, prefix: PrefixOutput, from: number, context: ForwardContext = {}): tf.Tensor2D {
  return tf.tidy(() => {
    const { batch, tokens } = prefix;
    const rows = model.forwardBlocks(prefix.rows, batch, tokens, context, from, model.blocks.length);
    const cls = tf.reshape(tf.slice(tf.reshape(rows, [batch, tokens, model.width]), [0, 0, 0], [batch, 1, model.width]), [batch, model.width]) as tf.Tensor2D;
    return model.forwardHead(model.norm.forward(cls));
  });
}
