import { expect } from 'chai';
import { createRandom, deriveSeed, permutation } from '../../common/random';
import { normalizationTable } from '../../stages/dataset/normalize';
import { RawImage, coefficients, crop, flipHorizontal, resample } from '../../stages/dataset/resample';
import {
  NAMED_TRANSFORMS,
  Transform,
  centerCropOffset,
  namedTransform,
  randomResizedCropBox,
  resizedSize,
  roundHalfEven,
} from '../../stages/dataset/transforms';

function row(values: number[]): RawImage {
  return { pixels: Uint8Array.from(values), height: 1, width: values.length, channels: 1 };
}

function full(image: RawImage) {
  return { left: 0, top: 0, width: image.width, height: image.height };
}

function noise(height: number, width: number, channels: number, seed: number): RawImage {
  const random = createRandom(seed);
  return { pixels: Uint8Array.from({ length: height * width * channels }, () => random.integer(0, 256)), height, width, channels };
}

describe('dataset: seeded random numbers', () => {
  it('repeats exactly for the same seed tuple and differs for another', () => {
    const draw = (...seed: number[]) => {
      const random = createRandom(...seed);
      return Array.from({ length: 5 }, () => random.nextUint32());
    };
    expect(draw(1, 2, 3)).to.deep.equal(draw(1, 2, 3));
    expect(draw(1, 2, 3)).to.not.deep.equal(draw(1, 3, 2));
    expect(draw(0)).to.not.deep.equal(draw(1));
    expect(deriveSeed(2 ** 32 + 5)).to.not.equal(deriveSeed(5));
  });

  it('draws floats in [0, 1), integers in range, and permutations', () => {
    const random = createRandom(7);
    for (let i = 0; i < 1000; i++) {
      const u = random.next();
      expect(u >= 0 && u < 1).to.equal(true);
      const k = random.integer(3, 9);
      expect(k >= 3 && k < 9 && Number.isInteger(k)).to.equal(true);
    }
    const order = permutation(100, createRandom(1));
    expect([...order].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 100 }, (_, i) => i));
    expect([...order]).to.not.deep.equal(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe('dataset: resampling (PIL semantics)', () => {
  it('upsamples with half-pixel centres and clamped edges: [0, 100] -> [0, 25, 75, 100]', () => {
    expect([...resample(row([0, 100]), full(row([0, 100])), 1, 4, 'bilinear').pixels]).to.deep.equal([0, 25, 75, 100]);
  });

  it('antialiases when shrinking: [0, 100, 200, 255] -> [71, 209] (triangle stretched to 2 pixels)', () => {
    const image = row([0, 100, 200, 255]);
    expect([...resample(image, full(image), 1, 2, 'bilinear').pixels]).to.deep.equal([71, 209]);
  });

  it('keeps constant images constant, clamps bicubic overshoot, and is the identity at the same size', () => {
    const constant: RawImage = { pixels: new Uint8Array(5 * 7 * 3).fill(123), height: 5, width: 7, channels: 3 };
    for (const interpolation of ['bilinear', 'bicubic'] as const) {
      for (const [h, w] of [[11, 3], [2, 2], [32, 17]]) {
        expect(new Set(resample(constant, full(constant), h, w, interpolation).pixels)).to.deep.equal(new Set([123]));
      }
    }
    const step = row([0, 0, 0, 255, 255, 255]);
    const up = resample(step, full(step), 1, 24, 'bicubic').pixels;
    expect(Math.min(...up)).to.equal(0);
    expect(Math.max(...up)).to.equal(255);
    const image = noise(6, 5, 3, 1);
    expect([...resample(image, full(image), 6, 5, 'bicubic').pixels]).to.deep.equal([...image.pixels]);
  });

  it('crops first: taps never read outside the box', () => {
    // A box over the middle two pixels of [255, 10, 20, 255], upsampled, never sees the 255s.
    const image = row([255, 10, 20, 255]);
    const out = resample(image, { left: 1, top: 0, width: 2, height: 1 }, 1, 4, 'bilinear').pixels;
    expect(Math.max(...out)).to.be.at.most(20);
    expect([...out]).to.deep.equal([10, 13, 18, 20]);
  });

  it('matches PIL 9.4 (Image.resize, crop then resize) within one level, bicubic overshoot clipped', () => {
    // Expected values from PIL: Image.fromarray(a, 'L').resize(...) on this 4x5 image.
    const input: RawImage = { pixels: Uint8Array.from([0, 97, 194, 35, 132, 53, 181, 53, 181, 53, 106, 9, 168, 71, 13, 159, 93, 27, 0, 190]), height: 4, width: 5, channels: 1 };
    const cases: Array<[string, { left: number; top: number; width: number; height: number }, number, number, 'bilinear' | 'bicubic', number[]]> = [
      ['bicubic 4x5 -> 7x9', full(input), 7, 9, 'bicubic', [
        0, 17, 78, 156, 205, 100, 25, 101, 148, 10, 45, 119, 148, 147, 110, 83, 100, 112, 39, 90, 178, 131, 56, 127, 174, 95, 48, 78, 84, 94, 101, 111,
        136, 131, 52, 7, 118, 77, 9, 74, 165, 119, 56, 29, 16, 152, 121, 67, 64, 74, 38, 24, 101, 144, 168, 148, 108, 61, 16, 0, 10, 146, 221,
      ]],
      ['bilinear 4x5 -> 2x3', full(input), 2, 3, 'bilinear', [73, 122, 90, 99, 79, 78]],
      ['bicubic crop (1,0)-(4,3) -> 6x5', { left: 1, top: 0, width: 3, height: 3 }, 6, 5, 'bicubic', [
        81, 139, 206, 92, 8, 113, 138, 165, 102, 58, 182, 136, 76, 123, 163, 156, 116, 69, 128, 174, 38, 80, 143, 116, 92, 0, 64, 178, 110, 53,
      ]],
    ];
    for (const [what, box, height, width, interpolation, expected] of cases) {
      const got = resample(input, box, height, width, interpolation).pixels;
      expect(got.length, what).to.equal(expected.length);
      expect(Math.max(...expected.map((value, i) => Math.abs(value - got[i]))), what).to.be.at.most(1);
    }
  });

  it('has weights summing to one for every output pixel', () => {
    for (const [inSize, outSize] of [[32, 224], [375, 256], [7, 3]]) {
      for (const interpolation of ['bilinear', 'bicubic'] as const) {
        const c = coefficients(inSize, outSize, interpolation);
        for (let o = 0; o < outSize; o++) {
          let sum = 0;
          for (let k = 0; k < c.counts[o]; k++) sum += c.weights[o * c.maxTaps + k];
          expect(sum).to.be.closeTo(1, 1e-6);
          expect(c.starts[o] >= 0 && c.starts[o] + c.counts[o] <= inSize).to.equal(true);
        }
      }
    }
  });

  it('flips left-right and crops with zero padding outside the image', () => {
    const image: RawImage = { pixels: Uint8Array.from([1, 2, 3, 4, 5, 6]), height: 1, width: 3, channels: 2 };
    expect([...flipHorizontal(image).pixels]).to.deep.equal([5, 6, 3, 4, 1, 2]);
    expect([...crop(row([1, 2, 3]), { left: -1, top: 0, width: 5, height: 1 }).pixels]).to.deep.equal([0, 1, 2, 3, 0]);
  });
});

describe('dataset: transforms', () => {
  it('rounds like Python and sizes like torchvision Resize and CenterCrop', () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven)).to.deep.equal([0, 2, 2, 0, 2, 3]);
    expect(resizedSize(375, 500, 256)).to.deep.equal([256, 341]);
    expect(resizedSize(500, 375, 256)).to.deep.equal([341, 256]);
    expect(resizedSize(32, 32, [224, 200])).to.deep.equal([224, 200]);
    expect(centerCropOffset(256, 224)).to.equal(16);
    expect(centerCropOffset(5, 2)).to.equal(2); // round(1.5) = 2
    expect(centerCropOffset(2, 5)).to.equal(-1); // padded: image starts 1 pixel in
  });

  it('draws RandomResizedCrop boxes inside the image with area and ratio in range, the same for the same seed', () => {
    for (let i = 0; i < 200; i++) {
      const box = randomResizedCropBox(32, 48, [0.08, 1], [3 / 4, 4 / 3], createRandom(3, i));
      expect(box.top >= 0 && box.left >= 0 && box.top + box.height <= 32 && box.left + box.width <= 48).to.equal(true);
      expect(box.width * box.height).to.be.within(0.08 * 32 * 48 * 0.8, 32 * 48);
      expect(randomResizedCropBox(32, 48, [0.08, 1], [3 / 4, 4 / 3], createRandom(3, i))).to.deep.equal(box);
    }
    // Impossible ratio: the fallback is the central crop with the closest ratio.
    expect(randomResizedCropBox(32, 32, [1, 1], [2, 2], createRandom(0))).to.deep.equal({ top: 8, left: 0, height: 16, width: 32 });
  });

  it('offers the named transforms with the paper and DINO settings', () => {
    expect(NAMED_TRANSFORMS).to.include.members(['paper-train', 'paper-test', 'dino-knn']);
    const train = new Transform(namedTransform('paper-train'));
    expect(train.description).to.equal(
      'paper-train: RandomResizedCrop(224, scale=[0.08,1], ratio=[0.75,1.3333], bilinear) -> RandomHorizontalFlip(0.5) -> Normalize(mean=[0.5,0.5,0.5], std=[0.5,0.5,0.5])',
    );
    expect(new Transform(namedTransform('dino-knn')).description).to.equal(
      'dino-knn: Resize(256, bicubic) -> CenterCrop(224) -> Normalize(mean=[0.485,0.456,0.406], std=[0.229,0.224,0.225])',
    );
    const image = noise(375, 500, 3, 2);
    expect(new Transform(namedTransform('dino-knn')).outputSize(375, 500)).to.deep.equal([224, 224]);
    const knn = new Transform(namedTransform('dino-knn')).apply(image, createRandom(0));
    expect([knn.height, knn.width, knn.channels]).to.deep.equal([224, 224, 3]);
    const test = new Transform(namedTransform('paper-test')).apply(noise(32, 32, 3, 3), createRandom(0));
    expect([test.height, test.width]).to.deep.equal([224, 224]);
    expect(train.isRandom).to.equal(true);
    expect(new Transform(namedTransform('paper-test')).isRandom).to.equal(false);
  });

  it('gives the same pixels for the same random stream and different ones for another', () => {
    const train = new Transform(namedTransform('paper-train', { size: 64 }));
    const image = noise(32, 32, 3, 4);
    const a = train.apply(image, createRandom(9, 1, 5));
    const b = train.apply(image, createRandom(9, 1, 5));
    const c = train.apply(image, createRandom(9, 1, 6));
    expect([a.height, a.width]).to.deep.equal([64, 64]);
    expect(Buffer.from(a.pixels).equals(Buffer.from(b.pixels))).to.equal(true);
    expect(Buffer.from(a.pixels).equals(Buffer.from(c.pixels))).to.equal(false);
  });

  it('normalises through the table into RGB float32, repeating grey and dropping alpha', () => {
    const transform = new Transform({ steps: [], mean: [0.5, 0.25, 0], std: [0.5, 0.25, 1] });
    const out = new Float32Array(6);
    transform.writeNormalized({ pixels: Uint8Array.from([0, 255]), height: 1, width: 2, channels: 1 }, out, 0);
    expect([...out]).to.deep.equal([-1, -1, 0, 1, 3, 1]);
    transform.writeNormalized({ pixels: Uint8Array.from([255, 0, 51, 9]), height: 1, width: 1, channels: 4 }, out, 3);
    expect([...out.subarray(3)]).to.deep.equal([...new Float32Array([1, -1, 0.2])]);
    const table = normalizationTable([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
    expect(table[256 + 128]).to.equal(Math.fround((128 / 255 - 0.456) / 0.224));
  });

  it('rejects bad specs with the step and value', () => {
    expect(() => new Transform({ steps: [{ op: 'resize', size: 0 }], mean: [0, 0, 0], std: [1, 1, 1] })).to.throw(/transform step 0 \(resize\): size must be a positive integer/);
    expect(() => new Transform({ steps: [{ op: 'horizontalFlip', p: 2 }], mean: [0, 0, 0], std: [1, 1, 1] })).to.throw(/p must be in \[0, 1\], got 2/);
    expect(() => new Transform({ steps: [{ op: 'randomResizedCrop', size: 8, scale: [0.5, 0.1] }], mean: [0, 0, 0], std: [1, 1, 1] })).to.throw(/scale must be \[low, high\]/);
    expect(() => new Transform({ steps: [], mean: [0, 0, 0], std: [1, 0, 1] })).to.throw(/every std must be positive/);
    expect(() => namedTransform('paper')).to.throw(/unknown transform 'paper' \(known: paper-train/);
  });
});
