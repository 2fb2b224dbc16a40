// The photometric part of DINO's view augmentation on uint8 images: brightness and contrast
// jitter (as PIL's ImageEnhance: a blend with black, and with the mean grey), Gaussian blur (a
// separable Gaussian of radius ceil(3 sigma), edges replicated) and solarisation (v >= 128 ->
// 255 - v). Each returns a new image; the random draws are made by the caller.

import type { RawImage } from '../../dataset/resample';

function mapped(image: RawImage, f: (value: number) => number): RawImage {
  const pixels = new Uint8Array(image.pixels.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.min(255, Math.max(0, Math.round(f(image.pixels[i]))));
  return { ...image, pixels };
}

export function adjustBrightness(image: RawImage, factor: number): RawImage {
  return mapped(image, (v) => v * factor);
}

/** The mean grey level of `count` pixels (ITU-R 601 luma for 3 or more channels, as PIL's convert('L'), before its rounding). */
export function lumaMean(values: ArrayLike<number>, count: number, channels: number): number {
  let total = 0;
  for (let p = 0; p < count; p++) {
    const o = p * channels;
    total += channels >= 3 ? (values[o] * 299 + values[o + 1] * 587 + values[o + 2] * 114) / 1000 : values[o];
  }
  return total / count;
}

function meanGrey(image: RawImage): number {
  return lumaMean(image.pixels, image.height * image.width, image.channels);
}

/** Blend with the image's mean grey level, rounded as PIL's. */
export function adjustContrast(image: RawImage, factor: number): RawImage {
  const mean = Math.round(meanGrey(image));
  return mapped(image, (v) => mean + factor * (v - mean));
}

/**
 * Brightness then contrast without rounding or clamping in between (augment.colorJitter 'float'):
 * m + c (b v - m), m the exact mean grey of the brightened image, clamped and rounded once.
 */
export function adjustBrightnessContrast(image: RawImage, brightness: number, contrast: number): RawImage {
  const mean = brightness * meanGrey(image);
  return mapped(image, (v) => mean + contrast * (brightness * v - mean));
}

export function solarize(image: RawImage, threshold = 128): RawImage {
  return mapped(image, (v) => (v >= threshold ? 255 - v : v));
}

function gaussianKernel(sigma: number): Float64Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float64Array(2 * radius + 1);
  let total = 0;
  for (let i = -radius; i <= radius; i++) total += kernel[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i] /= total;
  return kernel;
}

/** A separable Gaussian over channels-last values, edges replicated (unrounded). */
export function blurChannels(values: ArrayLike<number>, height: number, width: number, channels: number, sigma: number): Float64Array {
  const kernel = gaussianKernel(sigma);
  const radius = (kernel.length - 1) / 2;
  const horizontal = new Float64Array(values.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let k = -radius; k <= radius; k++) sum += kernel[k + radius] * values[(y * width + Math.min(width - 1, Math.max(0, x + k))) * channels + c];
        horizontal[(y * width + x) * channels + c] = sum;
      }
    }
  }
  const out = new Float64Array(values.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let k = -radius; k <= radius; k++) sum += kernel[k + radius] * horizontal[(Math.min(height - 1, Math.max(0, y + k)) * width + x) * channels + c];
        out[(y * width + x) * channels + c] = sum;
      }
    }
  }
  return out;
}

export function gaussianBlur(image: RawImage, sigma: number): RawImage {
  const blurred = blurChannels(image.pixels, image.height, image.width, image.channels, sigma);
  const out = new Uint8Array(blurred.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(blurred[i])));
  return { ...image, pixels: out };
}
