// The DINO recipe as the trainer uses it: every setting resolved (the pipeline's spec fills the
// defaults, which are the paper's where it gives one: facebookresearch/dino main_dino.py).

import type { InitScheme } from '../../../models/vit/module';

export interface DinoCropSettings {
  /** RandomResizedCrop area range of the two global views (at the model's size). */
  readonly globalScale: readonly [number, number];
  readonly localCrops: number;
  /** Side of the local views (a multiple of the patch size). */
  readonly localSize: number;
  readonly localScale: readonly [number, number];
  /** The crops' resampling (absent: bicubic, as DINO's RandomResizedCrop). */
  readonly interpolation?: 'bilinear' | 'bicubic';
}

export interface DinoAugmentSettings {
  /** Horizontal flip with probability 0.5 on every view (off for digits: a flipped 2 is not a 2). */
  readonly flip: boolean;
  /** Probability of the brightness/contrast jitter on a view. */
  readonly jitter: number;
  /** Brightness and contrast factors are drawn from [1 - x, 1 + x]. */
  readonly brightness: number;
  readonly contrast: number;
  /** Gaussian blur probability on the first global view, the second, and each local view. */
  readonly blur: readonly [number, number, number];
  /** The blur's sigma is drawn from this range (pixels). */
  readonly blurSigma: readonly [number, number];
  /** Solarisation probability on the second global view. */
  readonly solarize: number;
  /**
   * How brightness and contrast compose (absent: 'pil'). 'pil' is DINO's ColorJitter on PIL
   * images: each adjustment on 8-bit pixels, rounded and clamped, contrast about the rounded mean
   * grey. 'float': brightness, then contrast about the exact mean of the brightened values, with
   * one clamp at the end, so a stroke brightened past white keeps its contrast.
   */
  readonly colorJitter?: 'pil' | 'float';
}

export interface DinoSettings {
  /** K, the number of prototypes. */
  readonly outDim: number;
  readonly hiddenDim: number;
  readonly bottleneckDim: number;
  /** Weight norm's gain fixed to 1 on the last layer (else it trains, starting at 1). */
  readonly normLastLayer: boolean;
  /**
   * A batch normalisation after each hidden layer of the head (DINO's use_bn_in_head, off for its
   * ViTs). It lets a small backbone whose class tokens start nearly alike escape the uniform
   * collapse: the head sees each feature's deviation across the batch, not its shared value.
   */
  readonly batchNorm: boolean;
  /** The last layer does not train during the first this many steps. */
  readonly freezeLastLayerSteps: number;
  readonly studentTemperature: number;
  /** Linear from start to end over warmupSteps, then end. */
  readonly teacherTemperature: { readonly start: number; readonly end: number; readonly warmupSteps: number };
  readonly centerMomentum: number;
  /** The teacher's EMA momentum at step 0; it follows a cosine to 1 over the schedule's steps. */
  readonly teacherMomentum: number;
  /** Weight decay on a cosine from start to end over the schedule's steps. */
  readonly weightDecay: { readonly start: number; readonly end: number };
  /** Each parameter's gradient is clipped to this L2 norm (0: none), as DINO's clip_gradients. */
  readonly clipGradNorm: number;
  /**
   * Weight of DINOv2's KoLeo regulariser (0: off, as in DINO): minus the mean log distance from
   * each global view's L2-normalised class token to its nearest neighbour in the batch, summed
   * over the two global views. It spreads the features out (DINOv2 uses 0.1).
   */
  readonly koleo: number;
  /**
   * The learning rate's, the weight decay's and the teacher momentum's cosines are laid out over
   * this many steps (absent: the run's train.steps). Longer than the run, it stops before the
   * annealed end: the run is the first steps of a longer schedule.
   */
  readonly scheduleSteps?: number;
  readonly crops: DinoCropSettings;
  readonly augment: DinoAugmentSettings;
  /**
   * How the views are computed (absent: 'pil'). 'pil': DINO's torchvision pipeline on 8-bit images
   * (integer crop boxes resized with antialiasing, each operation rounded to 8 bits). 'float': a
   * tensor pipeline's (continuous crop boxes sampled bilinearly without antialiasing, every
   * operation on floats); crops.interpolation and augment.colorJitter do not apply to it.
   */
  readonly views?: 'pil' | 'float';
  /**
   * How the student (and so the teacher) is initialised (absent: 'dino', DINO's
   * vision_transformer.py; 'vitpeft': the supervised pretraining's init; models/vit/module.ts InitScheme).
   */
  readonly init?: InitScheme;
  /**
   * How the local views' position embeddings are resampled from the model's grid (absent: 'dino',
   * bicubic without antialiasing as DINO's interpolate_pos_encoding, posEmbed.ts DINO_RESAMPLE;
   * 'timm': timm's antialiased bicubic).
   */
  readonly positionResample?: 'dino' | 'timm';
}

export const DINO_DEFAULTS = {
  outDim: 65536,
  hiddenDim: 2048,
  bottleneckDim: 256,
  normLastLayer: true,
  batchNorm: false,
  freezeLastLayerSteps: 0,
  studentTemperature: 0.1,
  teacherTemperature: { start: 0.04, end: 0.07, warmupSteps: 0 },
  centerMomentum: 0.9,
  teacherMomentum: 0.996,
  weightDecay: { start: 0.04, end: 0.4 },
  clipGradNorm: 3,
  koleo: 0,
  crops: { globalScale: [0.4, 1], localCrops: 8, localScale: [0.05, 0.4] },
  augment: { flip: true, jitter: 0.8, brightness: 0.4, contrast: 0.4, blur: [1, 0.1, 0.5], blurSigma: [0.1, 2], solarize: 0.2 },
} as const;

/** DINO's local size (96 at 224) scaled to the model's size, rounded to a patch multiple. */
export function defaultLocalSize(imageSize: number, patchSize: number): number {
  return Math.max(patchSize, Math.round((imageSize * 96) / 224 / patchSize) * patchSize);
}
