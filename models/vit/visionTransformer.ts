// A Vision Transformer (timm's VisionTransformer with a class token and absolute position
// embeddings), composed of small parts whose parameters carry timm's names. forward is split
// as in timm: forwardFeatures (normed tokens), pool (the class token), forwardHead (logits);
// embedCls, which forward, the evaluation and DINO use, computes pool(forwardFeatures) with the
// last block on the class token only (classTokenAfter).

import * as tf from '@tensorflow/tfjs-core';
import { repeatFirstAxis } from '../ops/repeat';
import { Block, classTokenRows } from './block';
import { VitConfig, gridSize, validateConfig } from './config';
import { LayerNorm } from './layerNorm';
import { Linear } from './linear';
import { DEFAULT_CONTEXT, ForwardContext, InitScheme, Module, NamedParameter, normalWeights, parameter, prefixed, seedSource } from './module';
import { PatchEmbed } from './patchEmbed';
import { ResampleOptions, TIMM_RESAMPLE, gridResampleMatrix } from './posEmbed';

export interface VitParts {
  readonly patchEmbed: PatchEmbed;
  readonly clsToken: tf.Variable<tf.Rank.R3>;
  readonly posEmbed: tf.Variable<tf.Rank.R3>;
  readonly blocks: Block[];
  readonly norm: LayerNorm;
  readonly head: Linear | null;
}

export interface VitOptions {
  /** How position embeddings are resampled for inputs of another size (default: timm's, antialiased bicubic). */
  readonly posEmbedResample?: ResampleOptions;
}

export class VisionTransformer implements Module {
  readonly patchEmbed: PatchEmbed;
  readonly clsToken: tf.Variable<tf.Rank.R3>;
  readonly posEmbed: tf.Variable<tf.Rank.R3>;
  /** Mutable for surgery (block expansion inserts here); the model's depth is its length. */
  blocks: Block[];
  readonly norm: LayerNorm;
  head: Linear | null;
  readonly posEmbedResample: ResampleOptions;
  private readonly resampleCache = new Map<string, tf.Tensor2D>();

  constructor(
    private readonly base: VitConfig,
    parts: VitParts,
    options: VitOptions = {},
  ) {
    validateConfig(base);
    this.patchEmbed = parts.patchEmbed;
    this.clsToken = parts.clsToken;
    this.posEmbed = parts.posEmbed;
    this.blocks = parts.blocks;
    this.norm = parts.norm;
    this.head = parts.head;
    this.posEmbedResample = options.posEmbedResample ?? TIMM_RESAMPLE;
    const grid = gridSize(base);
    const expectedPos = [1, 1 + grid * grid, base.width];
    if (this.posEmbed.shape.join() !== expectedPos.join()) {
      throw new Error(`VisionTransformer: pos_embed has shape [${this.posEmbed.shape}], expected [${expectedPos}] for ${base.imageSize}px images with patch ${base.patchSize}`);
    }
  }

  /**
   * A randomly initialised model, its weights drawn as `options.init` says (models/vit/module.ts
   * InitScheme; absent: 'vitpeft', normal 0.02 truncated at 2 sigma, class token N(0, 1e-6)).
   * With `seed`, every random draw is seeded (seed, seed + 1, ... in a fixed order): same seed, same weights.
   */
  static init(config: VitConfig, options: VitOptions & { seed?: number; init?: InitScheme } = {}): VisionTransformer {
    validateConfig(config);
    const grid = gridSize(config);
    const seeds = seedSource(options.seed);
    const scheme = options.init ?? 'vitpeft';
    return new VisionTransformer(
      config,
      {
        patchEmbed: PatchEmbed.init(config.patchSize, config.inChannels, config.width, seeds, scheme),
        clsToken: parameter(tf.randomNormal([1, 1, config.width], 0, scheme === 'dino' ? 0.02 : 1e-6, 'float32', seeds()) as tf.Tensor3D, true),
        posEmbed: parameter(normalWeights<tf.Rank.R3>([1, 1 + grid * grid, config.width], 0.02, scheme, seeds()), true),
        blocks: Array.from({ length: config.depth }, () => Block.init(config.width, config.heads, config.mlpHidden, config.layerNormEps, seeds, scheme)),
        norm: LayerNorm.init(config.width, config.layerNormEps),
        head: config.numClasses > 0 ? Linear.init(config.width, config.numClasses, { seed: seeds(), scheme }) : null,
      },
      options,
    );
  }

  /** The architecture as it stands: depth and classes follow the blocks and head. */
  get config(): VitConfig {
    return { ...this.base, depth: this.blocks.length, numClasses: this.head?.outFeatures ?? 0 };
  }

  get width(): number {
    return this.base.width;
  }

  /** Indices of blocks added by block expansion. */
  get addedBlocks(): number[] {
    return this.blocks.flatMap((block, index) => (block.added ? [index] : []));
  }

  /** Patch embedding, class token and position embeddings: rows [batch * tokens, width]. */
  embed(images: tf.Tensor4D): { rows: tf.Tensor2D; batch: number; tokens: number } {
    const [batch, height, width] = images.shape;
    const p = this.base.patchSize;
    const gridH = height / p;
    const gridW = width / p;
    const tokens = 1 + gridH * gridW;
    const rows = tf.tidy(() => {
      const patches = tf.reshape(this.patchEmbed.forward(images), [batch, gridH * gridW, this.width]);
      const cls = repeatFirstAxis(this.clsToken, batch);
      const sequence = tf.add(tf.concat([cls, patches], 1), this.positionEmbeddings(gridH, gridW));
      return tf.reshape(sequence, [batch * tokens, this.width]) as tf.Tensor2D;
    });
    return { rows, batch, tokens };
  }

  /** Position embeddings for a grid, resampled (differentiably) when it is not the checkpoint's. */
  positionEmbeddings(gridH: number, gridW: number): tf.Tensor3D {
    const grid = gridSize(this.base);
    if (gridH === grid && gridW === grid) return this.posEmbed;
    const key = `${gridH}x${gridW}`;
    let matrix = this.resampleCache.get(key);
    if (!matrix) {
      matrix = tf.keep(tf.tensor2d(gridResampleMatrix([grid, grid], [gridH, gridW], this.posEmbedResample), [gridH * gridW, grid * grid]));
      this.resampleCache.set(key, matrix);
    }
    const resampleMatrix = matrix;
    return tf.tidy(() => {
      const [clsPosition, patchPositions] = tf.split(tf.reshape(this.posEmbed, [1 + grid * grid, this.width]), [1, grid * grid], 0);
      const resampled = tf.matMul(resampleMatrix, patchPositions);
      return tf.reshape(tf.concat([clsPosition, resampled], 0), [1, 1 + gridH * gridW, this.width]) as tf.Tensor3D;
    });
  }

  /** Runs blocks [from, to) on token rows. */
  forwardBlocks(rows: tf.Tensor2D, batch: number, tokens: number, context: ForwardContext = DEFAULT_CONTEXT, from = 0, to = this.blocks.length): tf.Tensor2D {
    return tf.tidy(() => {
      let x = rows;
      for (let i = from; i < to; i++) x = this.blocks[i].forward(x, batch, tokens, context);
      return from === to ? x.clone() : x;
    });
  }

  /** All tokens after the final norm: [batch, tokens, width]. */
  forwardFeatures(images: tf.Tensor4D, context: ForwardContext = DEFAULT_CONTEXT): tf.Tensor3D {
    this.checkImages(images);
    return tf.tidy(() => {
      const { rows, batch, tokens } = this.embed(images);
      const normed = this.norm.forward(this.forwardBlocks(rows, batch, tokens, context));
      return tf.reshape(normed, [batch, tokens, this.width]) as tf.Tensor3D;
    });
  }

  /** The class token of normed tokens: [batch, width]. */
  pool(features: tf.Tensor3D): tf.Tensor2D {
    const [batch, , width] = features.shape;
    return tf.tidy(() => tf.reshape(tf.slice(features, [0, 0, 0], [batch, 1, width]), [batch, width]) as tf.Tensor2D);
  }

  /**
   * Blocks [from, depth) on token rows, then the final norm of the class token: [batch, width].
   * The last block computes only the class token's row (Block.forwardClassToken): nothing reads
   * the others, so this is pool(forwardFeatures) with about a sixth less work at depth 6.
   */
  classTokenAfter(rows: tf.Tensor2D, batch: number, tokens: number, context: ForwardContext = DEFAULT_CONTEXT, from = 0): tf.Tensor2D {
    return tf.tidy(() => {
      const last = this.blocks.length - 1;
      const cls =
        from > last
          ? classTokenRows(rows, batch, tokens)
          : this.blocks[last].forwardClassToken(this.forwardBlocks(rows, batch, tokens, context, from, last), batch, tokens, context);
      return this.norm.forward(cls);
    });
  }

  /** The pretrained representation: class token after the final norm (not L2-normalised). */
  embedCls(images: tf.Tensor4D, context: ForwardContext = DEFAULT_CONTEXT): tf.Tensor2D {
    this.checkImages(images);
    return tf.tidy(() => {
      const { rows, batch, tokens } = this.embed(images);
      return this.classTokenAfter(rows, batch, tokens, context);
    });
  }

  forwardHead(pooled: tf.Tensor2D): tf.Tensor2D {
    if (!this.head) throw new Error('this model has no classification head');
    return this.head.forward(pooled);
  }

  /** Logits of the head on the class token. */
  forward(images: tf.Tensor4D, context: ForwardContext = DEFAULT_CONTEXT): tf.Tensor2D {
    return tf.tidy(() => this.forwardHead(this.embedCls(images, context)));
  }

  namedParameters(): NamedParameter[] {
    return [
      ['cls_token', this.clsToken],
      ['pos_embed', this.posEmbed],
      ...prefixed('patch_embed', this.patchEmbed.namedParameters()),
      ...this.blocks.flatMap((block, index) => prefixed(`blocks.${index}`, block.namedParameters())),
      ...prefixed('norm', this.norm.namedParameters()),
      ...(this.head ? prefixed('head', this.head.namedParameters()) : []),
    ];
  }

  /** Total number of scalar parameters. */
  parameterCount(): number {
    return this.namedParameters().reduce((sum, [, variable]) => sum + variable.size, 0);
  }

  /** A structural copy with its own variables (sharing storage until one side is assigned). */
  clone(): VisionTransformer {
    return new VisionTransformer(
      this.base,
      {
        patchEmbed: this.patchEmbed.clone(),
        clsToken: parameter(this.clsToken),
        posEmbed: parameter(this.posEmbed),
        blocks: this.blocks.map((block) => block.clone()),
        norm: this.norm.clone(),
        head: this.head?.clone() ?? null,
      },
      { posEmbedResample: this.posEmbedResample },
    );
  }

  /** Disposes part by part, so a part that holds more than its parameters (an adapter) frees it too. */
  dispose(): void {
    this.patchEmbed.dispose();
    this.clsToken.dispose();
    this.posEmbed.dispose();
    for (const block of this.blocks) block.dispose();
    this.norm.dispose();
    this.head?.dispose();
    for (const matrix of this.resampleCache.values()) matrix.dispose();
    this.resampleCache.clear();
  }

  private checkImages(images: tf.Tensor4D): void {
    const [, height, width, channels] = images.shape;
    const p = this.base.patchSize;
    if (images.rank !== 4 || channels !== this.base.inChannels || height % p !== 0 || width % p !== 0) {
      throw new Error(
        `images of shape [${images.shape}] do not fit the model: expected [batch, height, width, ${this.base.inChannels}] with height and width multiples of the patch size ${p}`,
      );
    }
  }
}
