// DINO's multi-crop views of a batch: 2 global views at the model's size and N local views at a
// smaller size, each a RandomResizedCrop (bicubic unless crops.interpolation says, ratio 3/4-4/3), an optional flip, then the
// photometric augmentation (brightness/contrast jitter, blur with a per-view probability,
// solarisation on the second global view) and normalisation. View v of source image i in epoch
// e draws only from createRandom(seed, VIEWS, e, i, v), so the views are a pure function of the
// batch stream's seed and step (a resumed pretraining sees the same pixels).
//
// The input batch holds the images after the base transform with mean 0 and std 1, i.e. k/255
// exactly, which turns back into the uint8 pixels losslessly.

import { createRandom } from '../../../common/random';
import type { RawImage } from '../../dataset/resample';
import { Transform } from '../../dataset/transforms';
import { adjustBrightness, adjustBrightnessContrast, adjustContrast, gaussianBlur, solarize } from './photometric';
import type { DinoSettings } from './settings';

const VIEWS = 0x564957;

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
    private readonly settings: Pick<DinoSettings, 'crops' | 'augment'>,
    readonly globalSize: number,
    normalization: { readonly mean: readonly number[]; readonly std: readonly number[] },
    private readonly seed: number,
  ) {
    const crop = (size: number, scale: readonly [number, number]) =>
      new Transform({
        steps: [{ op: 'randomResizedCrop', size, scale, ratio: [3 / 4, 4 / 3], interpolation: settings.crops.interpolation ?? 'bicubic' }, ...(settings.augment.flip ? [{ op: 'horizontalFlip' as const, p: 0.5 }] : [])],
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
    for (let b = 0; b < batch; b++) {
      const pixels = new Uint8Array(imageSize);
      for (let i = 0, o = b * imageSize; i < imageSize; i++) pixels[i] = Math.round(input.pixels[o + i] * 255);
      const image: RawImage = { pixels, height, width, channels: 3 };
      for (let view = 0; view < this.views; view++) {
        const local = view >= 2;
        const size = local ? localSize : globalSize;
        const out = local ? locals : globals;
        const row = (local ? view - 2 : view) * batch + b;
        this.globalCrop.writeNormalized(this.augment(image, view, input.indices[b], input.epoch), out, row * size * size * 3);
      }
    }
    return { globals, locals, batch, globalSize, localSize };
  }

  private augment(image: RawImage, view: number, index: number, epoch: number): RawImage {
    const { augment } = this.settings;
    const random = createRandom(this.seed, VIEWS, epoch, index, view);
    let current = (view < 2 ? this.globalCrop : this.localCrop).apply(image, random);
    if (random.next() < augment.jitter) {
      const brightness = random.uniform(Math.max(0, 1 - augment.brightness), 1 + augment.brightness);
      const contrast = random.uniform(Math.max(0, 1 - augment.contrast), 1 + augment.contrast);
      current = augment.colorJitter === 'float' ? adjustBrightnessContrast(current, brightness, contrast) : adjustContrast(adjustBrightness(current, brightness), contrast);
    }
    const blur = augment.blur[Math.min(view, 2)];
    if (blur > 0 && random.next() < blur) current = gaussianBlur(current, random.uniform(augment.blurSigma[0], augment.blurSigma[1]));
    if (view === 1 && augment.solarize > 0 && random.next() < augment.solarize) current = solarize(current);
    return current;
  }
}
