// Frozen features kept per example, for linear probing on inputs that are not augmented. When
// only the head trains, the class token after the final norm depends on the image alone; if the
// data pipeline hands the same pixels for an example every epoch (no random crops or flips),
// it can be computed once and every later step trains the head on stored features instead of
// running the backbone. Examples are identified by the caller's ids (e.g. the index in the
// dataset); the caller vouches that an id always means the same pixels.

import * as tf from '@tensorflow/tfjs-core';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { embeddingsTrain, forwardPrefix } from './forward';

export class FeatureCache {
  private readonly rows = new Map<number, Float32Array>();

  constructor(readonly model: VisionTransformer) {
    FeatureCache.check(model);
  }

  /** Refuses a model where anything before the head trains: its features would change with training. */
  static check(model: VisionTransformer): void {
    const training = [
      ...(embeddingsTrain(model) ? ['the embeddings'] : []),
      ...model.blocks.flatMap((block, index) => (block.namedParameters().some(([, v]) => v.trainable) ? [`block ${index}`] : [])),
      ...(model.norm.namedParameters().some(([, v]) => v.trainable) ? ['the final norm'] : []),
    ];
    if (training.length > 0) {
      throw new Error(`feature cache: only the head may train, but ${training.slice(0, 3).join(', ')}${training.length > 3 ? ', ...' : ''} train as well`);
    }
  }

  get size(): number {
    return this.rows.size;
  }

  /**
   * The normed class tokens of `images` [batch, width], taken from the cache where present and
   * computed (outside any gradient tape) and stored for the others.
   */
  features(images: tf.Tensor4D, ids: readonly number[]): tf.Tensor2D {
    const batch = images.shape[0];
    if (ids.length !== batch) throw new Error(`feature cache: ${ids.length} example ids for a batch of ${batch} images`);
    const missing = ids.flatMap((id, position) => (this.rows.has(id) ? [] : [position]));
    if (missing.length > 0) {
      const computed = tf.tidy(() => {
        const subset = missing.length === batch ? images : (tf.gather(images, missing) as tf.Tensor4D);
        const { rows, tokens } = forwardPrefix(this.model, subset, this.model.blocks.length);
        const cls = tf.reshape(tf.slice(tf.reshape(rows, [missing.length, tokens, this.model.width]), [0, 0, 0], [missing.length, 1, this.model.width]), [missing.length, this.model.width]);
        return this.model.norm.forward(cls as tf.Tensor2D);
      });
      const values = computed.dataSync() as Float32Array;
      computed.dispose();
      const width = this.model.width;
      missing.forEach((position, i) => this.rows.set(ids[position], values.slice(i * width, (i + 1) * width)));
    }
    const width = this.model.width;
    const out = new Float32Array(batch * width);
    ids.forEach((id, i) => out.set(this.rows.get(id)!, i * width));
    return tf.tensor2d(out, [batch, width]);
  }

  clear(): void {
    this.rows.clear();
  }
}
