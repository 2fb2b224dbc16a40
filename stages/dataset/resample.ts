// Separable image resampling as PIL does it (Image.resize with a box, also what torchvision's
// antialiased resize follows): for every output pixel a row of filter weights over the source
// pixels its footprint covers, the filter stretched by the scale factor when shrinking
// (antialiasing), taps outside the box dropped and the rest renormalised (edges clamp). The
// horizontal pass runs first, then the vertical one, each rounded and clamped to uint8 as in PIL
// (so bicubic overshoot is clipped between the passes too). PIL sums in 22-bit fixed point, this
// in floating point: results differ from PIL's by at most one level.

export interface RawImage {
  readonly pixels: Uint8Array;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

export type Interpolation = 'bilinear' | 'bicubic';

/** A box of source pixels, [left, top) to [left + width, top + height), all integers. */
export interface Box {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

interface Filter {
  readonly support: number;
  readonly weight: (x: number) => number;
}

const FILTERS: Record<Interpolation, Filter> = {
  bilinear: {
    support: 1,
    weight: (x) => {
      const a = x < 0 ? -x : x;
      return a < 1 ? 1 - a : 0;
    },
  },
  bicubic: {
    // Keys' cubic convolution with a = -0.5, as PIL and torchvision's antialiased bicubic.
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const t = x < 0 ? -x : x;
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

/** Per output pixel: the first source index, the number of taps, and their weights (maxTaps apart). */
export interface Coefficients {
  readonly starts: Int32Array;
  readonly counts: Int32Array;
  readonly weights: Float64Array;
  readonly maxTaps: number;
}

/** Weights mapping `inSize` source pixels onto `outSize` output pixels. */
export function coefficients(inSize: number, outSize: number, interpolation: Interpolation): Coefficients {
  const filter = FILTERS[interpolation];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const starts = new Int32Array(outSize);
  const counts = new Int32Array(outSize);
  const weights = new Float64Array(outSize * maxTaps);
  const taps = new Float64Array(maxTaps);
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    let total = 0;
    for (let k = 0; k < count; k++) {
      const w = filter.weight((k + first - center + 0.5) / filterScale);
      taps[k] = w;
      total += w;
    }
    for (let k = 0; k < count; k++) weights[out * maxTaps + k] = total !== 0 ? taps[k] / total : 0;
    starts[out] = first;
    counts[out] = count;
  }
  return { starts, counts, weights, maxTaps };
}

const coefficientCache = new Map<string, Coefficients>();

function cachedCoefficients(inSize: number, outSize: number, interpolation: Interpolation): Coefficients {
  const key = `${inSize}:${outSize}:${interpolation}`;
  let found = coefficientCache.get(key);
  if (!found) {
    if (coefficientCache.size > 4096) coefficientCache.clear();
    found = coefficients(inSize, outSize, interpolation);
    coefficientCache.set(key, found);
  }
  return found;
}

/** Rounds half up and clamps to 0..255 (the caller stores into a Uint8Array, which truncates). */
function toByte(value: number): number {
  return value <= 0 ? 0 : value >= 254.5 ? 255 : value + 0.5;
}

/** Resamples `box` of `image` to outHeight x outWidth (the box is cropped first: taps never leave it). */
export function resample(image: RawImage, box: Box, outHeight: number, outWidth: number, interpolation: Interpolation): RawImage {
  const { pixels, width, channels } = image;
  if (box.left < 0 || box.top < 0 || box.left + box.width > image.width || box.top + box.height > image.height || box.width < 1 || box.height < 1) {
    throw new RangeError(`resample: box ${JSON.stringify(box)} is not inside the ${image.width}x${image.height} image`);
  }
  if (box.width === outWidth && box.height === outHeight) return crop(image, box);
  const stride = width * channels;
  const rowLength = outWidth * channels;

  // Horizontal pass over the box's rows (skipped when the width does not change).
  let horizontal: Uint8Array;
  if (box.width === outWidth) {
    horizontal = new Uint8Array(box.height * rowLength);
    for (let y = 0; y < box.height; y++) {
      const from = (box.top + y) * stride + box.left * channels;
      for (let i = 0; i < rowLength; i++) horizontal[y * rowLength + i] = pixels[from + i];
    }
  } else {
    const { starts, counts, weights, maxTaps } = cachedCoefficients(box.width, outWidth, interpolation);
    horizontal = new Uint8Array(box.height * rowLength);
    for (let y = 0; y < box.height; y++) {
      const rowStart = (box.top + y) * stride + box.left * channels;
      let o = y * rowLength;
      for (let x = 0; x < outWidth; x++) {
        const first = rowStart + starts[x] * channels;
        const count = counts[x];
        const w = x * maxTaps;
        if (channels === 3) {
          // The common case, all three channels in one walk over the taps.
          let r = 0;
          let g = 0;
          let b = 0;
          for (let k = 0, at = first; k < count; k++, at += 3) {
            const weight = weights[w + k];
            r += weight * pixels[at];
            g += weight * pixels[at + 1];
            b += weight * pixels[at + 2];
          }
          horizontal[o++] = toByte(r);
          horizontal[o++] = toByte(g);
          horizontal[o++] = toByte(b);
        } else {
          for (let c = 0; c < channels; c++) {
            let sum = 0;
            for (let k = 0, at = first + c; k < count; k++, at += channels) sum += weights[w + k] * pixels[at];
            horizontal[o++] = toByte(sum);
          }
        }
      }
    }
  }

  // Vertical pass into bytes.
  if (box.height === outHeight) return { pixels: horizontal, height: outHeight, width: outWidth, channels };
  const out = new Uint8Array(outHeight * rowLength);
  const { starts, counts, weights, maxTaps } = cachedCoefficients(box.height, outHeight, interpolation);
  const sum = new Float64Array(rowLength);
  for (let y = 0; y < outHeight; y++) {
    // Weighted sum of whole rows: tap by tap, so the inner loop is a plain multiply-add over a row.
    const w = y * maxTaps;
    const o = y * rowLength;
    let from = starts[y] * rowLength;
    if (counts[y] === 2) {
      // Bilinear upsampling: two rows, one pass.
      const w0 = weights[w];
      const w1 = weights[w + 1];
      const next = from + rowLength;
      for (let i = 0; i < rowLength; i++) {
        out[o + i] = toByte(w0 * horizontal[from + i] + w1 * horizontal[next + i]);
      }
      continue;
    }
    let weight = weights[w];
    for (let i = 0; i < rowLength; i++) sum[i] = weight * horizontal[from + i];
    for (let k = 1; k < counts[y]; k++) {
      from += rowLength;
      weight = weights[w + k];
      for (let i = 0; i < rowLength; i++) sum[i] += weight * horizontal[from + i];
    }
    for (let i = 0; i < rowLength; i++) out[o + i] = toByte(sum[i]);
  }
  return { pixels: out, height: outHeight, width: outWidth, channels };
}

/** Copies a box out of the image; parts of the box outside the image are zero (torchvision pads). */
export function crop(image: RawImage, box: Box): RawImage {
  const { channels } = image;
  const out = new Uint8Array(box.height * box.width * channels);
  const rowLength = box.width * channels;
  for (let y = 0; y < box.height; y++) {
    const sourceY = box.top + y;
    if (sourceY < 0 || sourceY >= image.height) continue;
    const firstX = Math.max(0, -box.left);
    const lastX = Math.min(box.width, image.width - box.left);
    if (lastX <= firstX) continue;
    const from = (sourceY * image.width + box.left + firstX) * channels;
    out.set(image.pixels.subarray(from, from + (lastX - firstX) * channels), y * rowLength + firstX * channels);
  }
  return { pixels: out, height: box.height, width: box.width, channels };
}

/** Mirrors the image left to right. */
export function flipHorizontal(image: RawImage): RawImage {
  const { height, width, channels, pixels } = image;
  const out = new Uint8Array(pixels.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    if (channels === 3) {
      for (let from = row, to = row + (width - 1) * 3; to >= row; from += 3, to -= 3) {
        out[to] = pixels[from];
        out[to + 1] = pixels[from + 1];
        out[to + 2] = pixels[from + 2];
      }
    } else {
      for (let x = 0; x < width; x++) {
        const from = row + x * channels;
        const to = row + (width - 1 - x) * channels;
        for (let c = 0; c < channels; c++) out[to + c] = pixels[from + c];
      }
    }
  }
  return { pixels: out, height, width, channels };
}
