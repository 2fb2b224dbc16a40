// DINO's views computed on floats (dino.views 'float'), as a tensor pipeline makes them (the
// PyTorch probe scripts/dino_explore.py: affine_grid + grid_sample, arithmetic on [0, 1] floats):
// - the crop box is continuous: area and aspect drawn as RandomResizedCrop's, its sides clipped to
//   the image's (no retries, no integer rounding), its centre uniform where the box fits;
// - the box is sampled bilinearly at the output's pixel centres (grid_sample, align_corners false,
//   zeros outside), without antialiasing;
// - brightness, then contrast about the brightened image's mean grey, one clamp to [0, 1];
// - blur and solarisation (v >= 0.5 -> 1 - v) on floats; nothing is rounded to 8 bits.
// The 'pil' views (multiCrop.ts) round to 8 bits after each operation, as DINO's torchvision/PIL
// pipeline does. On 28-pixel digits both kinds of views pretrain alike (README, DINO section).

import type { Random } from '../../../common/random';
import { blurChannels, lumaMean } from './photometric';

/** An image of floats in [0, 1], channels last. */
export interface FloatImage {
  readonly values: Float32Array;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** A crop box in grid_sample's coordinates: the image spans [-1, 1]; sides are fractions of the image's. */
export interface ContinuousBox {
  readonly centerX: number;
  readonly centerY: number;
  /** The box's width over the image's (at most 1). */
  readonly width: number;
  readonly height: number;
}

/** Area fraction from `scale`, aspect log-uniform in `ratio`, sides clipped to 1, centre where the box fits (4 draws). */
export function continuousCropBox(scale: readonly [number, number], ratio: readonly [number, number], random: Random): ContinuousBox {
  const area = random.uniform(scale[0], scale[1]);
  const aspect = Math.exp(random.uniform(Math.log(ratio[0]), Math.log(ratio[1])));
  const width = Math.min(1, Math.sqrt(area * aspect));
  const height = Math.min(1, Math.sqrt(area / aspect));
  const centerX = random.uniform(-1, 1) * (1 - width);
  const centerY = random.uniform(-1, 1) * (1 - height);
  return { centerX, centerY, width, height };
}

/** grid_sample(image, affine_grid(box), 'bilinear', 'zeros', align_corners=False) at size x size. */
export function sampleBox(image: FloatImage, box: ContinuousBox, size: number): FloatImage {
  const { values, height, width, channels } = image;
  const out = new Float32Array(size * size * channels);
  const column = (extent: number, center: number, side: number, u: number) => ((extent * ((2 * u + 1) / size - 1) + center + 1) * side - 1) / 2;
  for (let v = 0; v < size; v++) {
    const y = column(box.height, box.centerY, height, v);
    const y0 = Math.floor(y);
    const fy = y - y0;
    for (let u = 0; u < size; u++) {
      const x = column(box.width, box.centerX, width, u);
      const x0 = Math.floor(x);
      const fx = x - x0;
      const o = (v * size + u) * channels;
      for (let dy = 0; dy < 2; dy++) {
        const row = y0 + dy;
        if (row < 0 || row >= height) continue;
        const wy = dy === 0 ? 1 - fy : fy;
        for (let dx = 0; dx < 2; dx++) {
          const col = x0 + dx;
          if (col < 0 || col >= width) continue;
          const weight = wy * (dx === 0 ? 1 - fx : fx);
          const i = (row * width + col) * channels;
          for (let c = 0; c < channels; c++) out[o + c] += weight * values[i + c];
        }
      }
    }
  }
  return { values: out, height: size, width: size, channels };
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/** m + c (b v - m), m the brightened image's mean grey, clamped to [0, 1] once. */
export function jitterFloat(image: FloatImage, brightness: number, contrast: number): FloatImage {
  const mean = brightness * lumaMean(image.values, image.height * image.width, image.channels);
  return { ...image, values: image.values.map((v) => clamp01(mean + contrast * (brightness * v - mean))) };
}

/** The separable Gaussian of photometric.ts (radius ceil(3 sigma), edges replicated), on floats. */
export function blurFloat(image: FloatImage, sigma: number): FloatImage {
  return { ...image, values: Float32Array.from(blurChannels(image.values, image.height, image.width, image.channels, sigma)) };
}

export function solarizeFloat(image: FloatImage): FloatImage {
  return { ...image, values: image.values.map((v) => (v >= 0.5 ? 1 - v : v)) };
}
