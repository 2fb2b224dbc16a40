// Per-image transforms with torchvision's semantics (RandomResizedCrop, RandomHorizontalFlip,
// Resize, CenterCrop, then Normalize), run in JavaScript on uint8 HWC images. Geometry produces
// uint8 images (as PIL does); the final step writes float32 (v/255 - mean)/std through a lookup
// table straight into the batch buffer, turning grey into RGB and dropping alpha on the way.
// Randomness comes only from the Random handed in, so (seed, epoch, index) fixes the pixels.

import { Random } from '../../common/random';
import { IMAGENET_MEAN, IMAGENET_STD, normalizationTable } from './normalize';
import { Interpolation, RawImage, crop, flipHorizontal, resample } from './resample';

/** A number is a square for crops and the shorter side for Resize; a pair is [height, width]. */
export type Size = number | readonly [number, number];

export type TransformStep =
  | { op: 'randomResizedCrop'; size: Size; scale?: readonly [number, number]; ratio?: readonly [number, number]; interpolation?: Interpolation }
  | { op: 'horizontalFlip'; p?: number }
  | { op: 'resize'; size: Size; interpolation?: Interpolation }
  | { op: 'centerCrop'; size: Size };

export interface TransformSpec {
  readonly name?: string;
  readonly steps: readonly TransformStep[];
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export const HALF = [0.5, 0.5, 0.5] as const;

/**
 * The transforms available by name (size defaults to 224):
 * - paper-train: RandomResizedCrop(size, scale 0.08-1, ratio 3/4-4/3, bilinear), flip p=0.5, mean = std = 0.5
 * - paper-test:  Resize((size, size), bilinear), mean = std = 0.5
 * - dino-knn:    Resize(size * 256/224 shorter side, bicubic), CenterCrop(size), ImageNet mean/std
 * - native:      no geometry, mean = std = 0.5 (images keep their size, e.g. CIFAR's 32x32)
 * - native-flip: flip p=0.5, mean = std = 0.5
 */
export const NAMED_TRANSFORMS = ['paper-train', 'paper-test', 'dino-knn', 'native', 'native-flip'] as const;
export type TransformName = (typeof NAMED_TRANSFORMS)[number];

export function isTransformName(name: string): name is TransformName {
  return (NAMED_TRANSFORMS as readonly string[]).includes(name);
}

export function namedTransform(name: string, options: { size?: number } = {}): TransformSpec {
  const size = options.size ?? 224;
  switch (name) {
    case 'paper-train':
      return {
        name,
        steps: [
          { op: 'randomResizedCrop', size, scale: [0.08, 1], ratio: [3 / 4, 4 / 3], interpolation: 'bilinear' },
          { op: 'horizontalFlip', p: 0.5 },
        ],
        mean: HALF,
        std: HALF,
      };
    case 'paper-test':
      return { name, steps: [{ op: 'resize', size: [size, size], interpolation: 'bilinear' }], mean: HALF, std: HALF };
    case 'dino-knn':
      return {
        name,
        steps: [
          { op: 'resize', size: Math.round((size * 256) / 224), interpolation: 'bicubic' },
          { op: 'centerCrop', size },
        ],
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
      };
    case 'native':
      return { name, steps: [], mean: HALF, std: HALF };
    case 'native-flip':
      return { name, steps: [{ op: 'horizontalFlip', p: 0.5 }], mean: HALF, std: HALF };
    default:
      throw new Error(`unknown transform '${name}' (known: ${NAMED_TRANSFORMS.join(', ')})`);
  }
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

function pair(size: Size): [number, number] {
  return typeof size === 'number' ? [size, size] : [size[0], size[1]];
}

/** torchvision's RandomResizedCrop.get_params: [top, left, height, width] of the crop. */
export function randomResizedCropBox(
  height: number,
  width: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  random: Random,
): { top: number; left: number; height: number; width: number } {
  const area = height * width;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * random.uniform(scale[0], scale[1]);
    const aspect = Math.exp(random.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = random.integer(0, height - h + 1);
      const left = random.integer(0, width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  // Fallback: the central crop with the closest allowed aspect ratio.
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    w = width;
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    h = height;
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  } else {
    w = width;
    h = height;
  }
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** torchvision's Resize output size: a number sets the shorter side, the longer one truncates. */
export function resizedSize(height: number, width: number, size: Size): [number, number] {
  if (typeof size !== 'number') return pair(size);
  if (width <= height) return [Math.trunc((size * height) / width), size];
  return [size, Math.trunc((size * width) / height)];
}

/** torchvision's CenterCrop offsets (negative when the crop is larger: it pads with zeros). */
export function centerCropOffset(inSize: number, cropSize: number): number {
  return cropSize > inSize ? -Math.floor((cropSize - inSize) / 2) : roundHalfEven((inSize - cropSize) / 2);
}

function describeStep(step: TransformStep): string {
  switch (step.op) {
    case 'randomResizedCrop':
      return `RandomResizedCrop(${JSON.stringify(step.size)}, scale=${JSON.stringify(step.scale ?? [0.08, 1])}, ratio=[${(step.ratio ?? [3 / 4, 4 / 3]).map((r) => +r.toFixed(4)).join(',')}], ${step.interpolation ?? 'bilinear'})`;
    case 'horizontalFlip':
      return `RandomHorizontalFlip(${step.p ?? 0.5})`;
    case 'resize':
      return `Resize(${JSON.stringify(step.size)}, ${step.interpolation ?? 'bilinear'})`;
    case 'centerCrop':
      return `CenterCrop(${JSON.stringify(step.size)})`;
  }
}

function checkSize(size: unknown, where: string): void {
  const values = typeof size === 'number' ? [size] : Array.isArray(size) && size.length === 2 ? size : undefined;
  if (!values || !values.every((v) => Number.isInteger(v) && v > 0 && v <= 16384)) {
    throw new Error(`${where}: size must be a positive integer or [height, width], got ${JSON.stringify(size)}`);
  }
}

function checkRange(range: unknown, where: string, what: string): void {
  if (range === undefined) return;
  if (!Array.isArray(range) || range.length !== 2 || !range.every((v) => typeof v === 'number' && v > 0 && Number.isFinite(v)) || range[0] > range[1]) {
    throw new Error(`${where}: ${what} must be [low, high] with 0 < low <= high, got ${JSON.stringify(range)}`);
  }
}

function validateStep(step: TransformStep, index: number): void {
  const where = `transform step ${index} (${(step as { op?: unknown }).op})`;
  const interpolation = (step as { interpolation?: unknown }).interpolation;
  if (interpolation !== undefined && interpolation !== 'bilinear' && interpolation !== 'bicubic') {
    throw new Error(`${where}: interpolation must be bilinear or bicubic, got ${JSON.stringify(interpolation)}`);
  }
  switch (step.op) {
    case 'randomResizedCrop':
      checkSize(step.size, where);
      checkRange(step.scale, where, 'scale');
      checkRange(step.ratio, where, 'ratio');
      if (step.scale && step.scale[1] > 1) throw new Error(`${where}: scale must not exceed 1, got ${JSON.stringify(step.scale)}`);
      return;
    case 'horizontalFlip':
      if (step.p !== undefined && !(step.p >= 0 && step.p <= 1)) throw new Error(`${where}: p must be in [0, 1], got ${step.p}`);
      return;
    case 'resize':
    case 'centerCrop':
      checkSize(step.size, where);
      return;
    default:
      throw new Error(`${where}: unknown op (expected randomResizedCrop, horizontalFlip, resize, centerCrop)`);
  }
}

/** A validated transform: geometry per image, then normalisation into a float32 RGB buffer. */
export class Transform {
  readonly description: string;
  readonly steps: readonly TransformStep[];
  readonly mean: readonly number[];
  readonly std: readonly number[];
  private readonly table: Float32Array;

  constructor(spec: TransformSpec) {
    spec.steps.forEach(validateStep);
    if (spec.mean.length !== 3 || spec.std.length !== 3) throw new Error(`transform: mean and std need 3 values (RGB), got ${spec.mean.length} and ${spec.std.length}`);
    this.table = normalizationTable(spec.mean, spec.std);
    this.steps = spec.steps;
    this.mean = spec.mean;
    this.std = spec.std;
    const normalize = `Normalize(mean=[${spec.mean.join(',')}], std=[${spec.std.join(',')}])`;
    this.description = `${spec.name ? `${spec.name}: ` : ''}${[...spec.steps.map(describeStep), normalize].join(' -> ')}`;
  }

  /** Whether apply() draws from the random generator (false: output depends on the image alone). */
  get isRandom(): boolean {
    return this.steps.some((step) => step.op === 'randomResizedCrop' || (step.op === 'horizontalFlip' && (step.p ?? 0.5) > 0));
  }

  /** The output [height, width] for an input size, when it does not depend on randomness or input. */
  outputSize(height: number, width: number): [number, number] {
    let size: [number, number] = [height, width];
    for (const step of this.steps) {
      if (step.op === 'randomResizedCrop' || step.op === 'centerCrop') size = pair(step.size);
      else if (step.op === 'resize') size = resizedSize(size[0], size[1], step.size);
    }
    return size;
  }

  /** The geometric steps on one uint8 image. */
  apply(image: RawImage, random: Random): RawImage {
    let current = image;
    for (const step of this.steps) {
      switch (step.op) {
        case 'randomResizedCrop': {
          const [outHeight, outWidth] = pair(step.size);
          const box = randomResizedCropBox(current.height, current.width, step.scale ?? [0.08, 1], step.ratio ?? [3 / 4, 4 / 3], random);
          current = resample(current, box, outHeight, outWidth, step.interpolation ?? 'bilinear');
          break;
        }
        case 'horizontalFlip':
          if (random.next() < (step.p ?? 0.5)) current = flipHorizontal(current);
          break;
        case 'resize': {
          const [outHeight, outWidth] = resizedSize(current.height, current.width, step.size);
          current = resample(current, { left: 0, top: 0, width: current.width, height: current.height }, outHeight, outWidth, step.interpolation ?? 'bilinear');
          break;
        }
        case 'centerCrop': {
          const [cropHeight, cropWidth] = pair(step.size);
          const box = { top: centerCropOffset(current.height, cropHeight), left: centerCropOffset(current.width, cropWidth), height: cropHeight, width: cropWidth };
          current = crop(current, box);
          break;
        }
      }
    }
    return current;
  }

  /** Writes the image normalised as float32 RGB HWC at out[offset...]; grey is repeated, alpha dropped. */
  writeNormalized(image: RawImage, out: Float32Array, offset: number): void {
    const { pixels, channels } = image;
    const count = image.height * image.width;
    const table = this.table;
    let o = offset;
    if (channels === 3) {
      for (let p = 0, i = 0; p < count; p++, i += 3) {
        out[o++] = table[pixels[i]];
        out[o++] = table[256 + pixels[i + 1]];
        out[o++] = table[512 + pixels[i + 2]];
      }
    } else if (channels === 1 || channels === 2) {
      for (let p = 0; p < count; p++) {
        const v = pixels[p * channels];
        out[o++] = table[v];
        out[o++] = table[256 + v];
        out[o++] = table[512 + v];
      }
    } else if (channels === 4) {
      for (let p = 0, i = 0; p < count; p++, i += 4) {
        out[o++] = table[pixels[i]];
        out[o++] = table[256 + pixels[i + 1]];
        out[o++] = table[512 + pixels[i + 2]];
      }
    } else {
      throw new Error(`transform: images with ${channels} channels are not supported (expected 1 to 4)`);
    }
  }
}

/** A Transform from a name ('paper-train'), a spec, or an existing Transform. */
export function resolveTransform(transform: string | TransformSpec | Transform, options: { size?: number } = {}): Transform {
  if (transform instanceof Transform) return transform;
  return new Transform(typeof transform === 'string' ? namedTransform(transform, options) : transform);
}
