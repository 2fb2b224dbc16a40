// DINO's multi-crop views of a batch: 2 global views at the model's size and N local views at a
// smaller size, each a RandomResizedCrop (bicubic unless crops.interpolation says, ratio 3/4-4/3), an optional flip, then the
// photometric augmentation (brightness/contrast jitter, blur with a per-view probability,
// solarisation on the second global view) and normalisation. With dino.views 'float' the same
// steps run on floats from continuous crop boxes (floatViews.ts). View v of source image i in epoch
// e draws only from createRandom(seed, VIEWS, e, i, v), so the views are a pure function of the
// batch stream's seed and step (a resumed pretraining sees the same pixels).
//
// The input batch holds the images after the base transform with mean 0 and std 1, i.e. k/255
// exactly, which turns back into the uint8 pixels losslessly.

import { Random, createRandom } from '../../../common/random';
import type { RawImage } from '../../dataset/resample';
import { Transform } from '../../dataset/transforms';
import { FloatImage, blurFloat, continuousCropBox, jitterFloat, sampleBox, solarizeFloat } from './floatViews';
import { adjustBrightness, adjustBrightnessContrast, adjustContrast, gaussianBlur, solarize } from './photometric';
import type { DinoSettings } from './settings';

const VIEWS = 0x564957;
const RATIO: readonly [number, number] = [3 / 4, 4 / 3];

export interface MultiCropInput {
  /** float32 [B, H, W, 3] with values k/255. */
  readonly pixels: Float32Array;
  readonly shape: readonly [number, number, number, number];
  readonly indices: readonly number[];
  readonly epoch: number;
}

export interface MultiCropViews {
  /** float32 [2B, S, S, 3]: global view 0 of every image, then global view 1. */
  readonly globals: Float32Array;
  /** float32 [N B, s, s, 3], view-major like globals (empty without local crops). */
  readonly locals: Float32Array;
  readonly batch: number;
  readonly globalSize: number;
  readonly localSize: number;
}

export class MultiCrop {
  private readonly globalCrop: Transform;
  private readonly localCrop: Transform;

  constructor(
    private readonly settings: Pick<DinoSettings, 'crops' | 'augment' | 'views'>,
    readonly globalSize: number,
    private readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] },
    private readonly seed: number,
  ) {
    const crop = (size: number, scale: readonly [number, number]) =>
      new Transform({
        steps: [{ op: 'randomResizedCrop', size, scale, ratio: RATIO, interpolation: settings.crops.interpolation ?? 'bicubic' }, ...(settings.augment.flip ? [{ op: 'horizontalFlip' as const, p: 0.5 }] : [])],
        mean: normalization.mean,
        std: normalization.std,
      });
    this.globalCrop = crop(globalSize, settings.crops.globalScale);
    this.localCrop = crop(settings.crops.localSize, settings.crops.localScale);
  }

  get views(): number {
    return 2 + this.settings.crops.localCrops;
  }

  cropBatch(input: MultiCropInput): MultiCropViews {
    const [batch, height, width, channels] = input.shape;
    if (channels !== 3) throw new Error(`multi-crop: expected RGB batches, got ${channels} channels`);
    const { localCrops, localSize } = this.settings.crops;
    const globalSize = this.globalSize;
    const globals = new Float32Array(2 * batch * globalSize * globalSize * 3);
    const locals = new Float32Array(localCrops * batch * localSize * localSize * 3);
    const imageSize = height * width * 3;
    const float = this.settings.views === 'float';
    const { indices, epoch } = input;
    for (let b = 0; b < batch; b++) {
      let write: (view: number, out: Float32Array, offset: number) => void;
      if (float) {
        const image: FloatImage = { values: input.pixels.subarray(b * imageSize, (b + 1) * imageSize), height, width, channels: 3 };
        write = (view, out, offset) => this.writeNormalized(this.augmentFloat(image, view, indices[b], epoch), out, offset);
      } else {
        const pixels = new Uint8Array(imageSize);
        for (let i = 0, o = b * imageSize; i < imageSize; i++) pixels[i] = Math.round(input.pixels[o + i] * 255);
        const image: RawImage = { pixels, height, width, channels: 3 };
        write = (view, out, offset) => this.globalCrop.writeNormalized(this.augment(image, view, indices[b], epoch), out, offset);
      }
      for (let view = 0; view < this.views; view++) {
        const local = view >= 2;
        const size = local ? localSize : globalSize;
        const row = (local ? view - 2 : view) * batch + b;
        write(view, local ? locals : globals, row * size * size * 3);
      }
    }
    return { globals, locals, batch, globalSize, localSize };
  }

  private augment(image: RawImage, view: number, index: number, epoch: number): RawImage {
    const { augment } = this.settings;
    const random = createRandom(this.seed, VIEWS, epoch, index, view);
    const cropped = (view < 2 ? this.globalCrop : this.localCrop).apply(image, random);
    return this.photometric(cropped, view, random, {
      jitter: (current, brightness, contrast) => (augment.colorJitter === 'float' ? adjustBrightnessContrast(current, brightness, contrast) : adjustContrast(adjustBrightness(current, brightness), contrast)),
      blur: gaussianBlur,
      solarize,
    });
  }

  /** The 'float' views: the crop's four draws from a continuous box, then the draws of augment() in the same order. */
  private augmentFloat(image: FloatImage, view: number, index: number, epoch: number): FloatImage {
    const { augment, crops } = this.settings;
    const random = createRandom(this.seed, VIEWS, epoch, index, view);
    const global = view < 2;
    let cropped = sampleBox(image, continuousCropBox(global ? crops.globalScale : crops.localScale, RATIO, random), global ? this.globalSize : crops.localSize);
    if (augment.flip && random.next() < 0.5) cropped = flipped(cropped);
    return this.photometric(cropped, view, random, { jitter: jitterFloat, blur: blurFloat, solarize: solarizeFloat });
  }

  /** Jitter, blur and solarisation with the view's probabilities, drawn in one order for either kind of image. */
  private photometric<I>(image: I, view: number, random: Random, ops: { jitter(image: I, brightness: number, contrast: number): I; blur(image: I, sigma: number): I; solarize(image: I): I }): I {
    const { augment } = this.settings;
    let current = image;
    if (random.next() < augment.jitter) {
      const brightness = random.uniform(Math.max(0, 1 - augment.brightness), 1 + augment.brightness);
      const contrast = random.uniform(Math.max(0, 1 - augment.contrast), 1 + augment.contrast);
      current = ops.jitter(current, brightness, contrast);
    }
    const blur = augment.blur[Math.min(view, 2)];
    if (blur > 0 && random.next() < blur) current = ops.blur(current, random.uniform(augment.blurSigma[0], augment.blurSigma[1]));
    if (view === 1 && augment.solarize > 0 && random.next() < augment.solarize) current = ops.solarize(current);
    return current;
  }

  private writeNormalized(image: FloatImage, out: Float32Array, offset: number): void {
    const { mean, std } = this.normalization;
    const { values } = image;
    for (let i = 0; i < values.length; i += 3) {
      for (let c = 0; c < 3; c++) out[offset + i + c] = (values[i + c] - mean[c]) / std[c];
    }
  }
}

function flipped(image: FloatImage): FloatImage {
  const { values, height, width, channels } = image;
  const out = new Float32Array(values.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out.set(values.subarray((y * width + x) * channels, (y * width + x + 1) * channels), (y * width + width - 1 - x) * channels);
  }
  return { ...image, values: out };
}
