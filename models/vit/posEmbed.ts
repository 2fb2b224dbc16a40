// Position-embedding resampling for inputs of another size than the checkpoint's, matching
// PyTorch's F.interpolate(mode='bicubic'|'bilinear', align_corners=False, antialias) as timm's
// resample_abs_pos_embed calls it. timm passes antialias=True by default, and PyTorch's
// antialiased bicubic uses another kernel (a = -0.5, weights renormalised at the borders) than
// the plain one (a = -0.75, borders clamped) even when enlarging, so the two are kept apart.
// The resampling is a fixed linear map R, so new = R @ old stays differentiable.

export type PosEmbedInterpolation = 'bicubic' | 'bilinear';

export interface ResampleOptions {
  readonly mode: PosEmbedInterpolation;
  /** timm's default (true); false gives plain F.interpolate. */
  readonly antialias: boolean;
}

export const TIMM_RESAMPLE: ResampleOptions = { mode: 'bicubic', antialias: true };
/**
 * DINO's interpolate_pos_encoding (vision_transformer.py) as the PyTorch probe scripts/dino_explore.py
 * writes it: F.interpolate bicubic to the new grid without antialiasing (DINO passes scale_factor
 * (g + 0.1) / G, which shifts its sample points by a fraction of a cell; not followed).
 */
export const DINO_RESAMPLE: ResampleOptions = { mode: 'bicubic', antialias: false };

const CUBIC_A = -0.75;
const CUBIC_A_ANTIALIAS = -0.5;

/** PyTorch's antialiased filters (aten UpSampleKernel: aa_filter). */
function antialiasFilter(mode: PosEmbedInterpolation, x: number): number {
  const t = Math.abs(x);
  if (mode === 'bilinear') return Math.max(0, 1 - t);
  const a = CUBIC_A_ANTIALIAS;
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** Weights as PyTorch computes them for antialias=True (support widened when shrinking). */
function antialiasMatrix(inSize: number, outSize: number, mode: PosEmbedInterpolation): Float64Array {
  const matrix = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  const interpolationSize = mode === 'bicubic' ? 4 : 2;
  const support = scale >= 1 ? (interpolationSize / 2) * scale : interpolationSize / 2;
  const inverseScale = scale >= 1 ? 1 / scale : 1;
  for (let out = 0; out < outSize; out++) {
    const center = scale * (out + 0.5);
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const last = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    const weights: number[] = [];
    for (let j = first; j < last; j++) {
      const w = antialiasFilter(mode, (j - center + 0.5) * inverseScale);
      weights.push(w);
      total += w;
    }
    for (let j = first; j < last; j++) matrix[out * inSize + j] = total !== 0 ? weights[j - first] / total : weights[j - first];
  }
  return matrix;
}

function cubicWeights(t: number): [number, number, number, number] {
  const near = (x: number) => ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
  const far = (x: number) => ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** Row-major [outSize, inSize] matrix of 1-D interpolation weights. */
export function interpolationMatrix(inSize: number, outSize: number, { mode, antialias }: ResampleOptions): Float64Array {
  if (antialias) return antialiasMatrix(inSize, outSize, mode);
  const matrix = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  const clampIndex = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  for (let out = 0; out < outSize; out++) {
    const row = out * inSize;
    if (mode === 'bilinear') {
      const source = Math.max(scale * (out + 0.5) - 0.5, 0);
      const low = Math.min(Math.floor(source), inSize - 1);
      const high = Math.min(low + 1, inSize - 1);
      const fraction = source - low;
      matrix[row + low] += 1 - fraction;
      matrix[row + high] += fraction;
    } else {
      const source = scale * (out + 0.5) - 0.5;
      const floor = Math.floor(source);
      const weights = cubicWeights(source - floor);
      for (let tap = 0; tap < 4; tap++) matrix[row + clampIndex(floor - 1 + tap)] += weights[tap];
    }
  }
  return matrix;
}

/**
 * Row-major [newH*newW, oldH*oldW] matrix mapping a row-major grid of patch embeddings to the
 * resampled grid: the Kronecker product of the row and column interpolation matrices.
 */
export function gridResampleMatrix(oldGrid: readonly [number, number], newGrid: readonly [number, number], options: ResampleOptions): Float32Array {
  const [oldH, oldW] = oldGrid;
  const [newH, newW] = newGrid;
  const rows = interpolationMatrix(oldH, newH, options);
  const cols = interpolationMatrix(oldW, newW, options);
  const matrix = new Float32Array(newH * newW * oldH * oldW);
  const oldCount = oldH * oldW;
  for (let y = 0; y < newH; y++) {
    for (let x = 0; x < newW; x++) {
      const outRow = (y * newW + x) * oldCount;
      for (let i = 0; i < oldH; i++) {
        const wy = rows[y * oldH + i];
        if (wy === 0) continue;
        for (let j = 0; j < oldW; j++) matrix[outRow + i * oldW + j] = wy * cols[x * oldW + j];
      }
    }
  }
  return matrix;
}
