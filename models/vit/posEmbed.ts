// Position-embedding resampling for inputs of another size than the checkpoint's, matching
// PyTorch's F.interpolate(mode='bicubic'|'bilinear', align_corners=False) as timm's
// resample_abs_pos_embed uses it (antialiasing only matters when shrinking, which timm
// does with antialias; here shrinking uses the same plain kernels and says so in the docs).
// The resampling is a fixed linear map R, so new = R @ old stays differentiable.

export type PosEmbedInterpolation = 'bicubic' | 'bilinear';

const CUBIC_A = -0.75;

function cubicWeights(t: number): [number, number, number, number] {
  const near = (x: number) => ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
  const far = (x: number) => ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** Row-major [outSize, inSize] matrix of 1-D interpolation weights. */
export function interpolationMatrix(inSize: number, outSize: number, mode: PosEmbedInterpolation): Float64Array {
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
export function gridResampleMatrix(oldGrid: readonly [number, number], newGrid: readonly [number, number], mode: PosEmbedInterpolation): Float32Array {
  const [oldH, oldW] = oldGrid;
  const [newH, newW] = newGrid;
  const rows = interpolationMatrix(oldH, newH, mode);
  const cols = interpolationMatrix(oldW, newW, mode);
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
