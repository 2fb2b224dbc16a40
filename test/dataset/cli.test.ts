import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { embed } from '../../cli/commands/embed';
import { UsageError } from '../../cli/errors';
import { buildProgram } from '../../cli/main';
import { SafetensorsFile, writeSafetensors } from '../../models/checkpoint/safetensors';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { IMAGENET_MEAN, IMAGENET_STD, normalizeImages } from '../../stages/dataset/normalize';
import { maxAbsDifference } from '../helpers/tensors';
import { cifar100Bytes, idxBytes, tempFolder } from '../helpers/datasetFixtures';

// The tiny timm-layout fixture: image 32, patch 8, width 128, 2 heads, 10 classes.
const CHECKPOINT = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'parity', 'vit_timm.safetensors');
const quiet = { log: () => undefined };
const defaults = { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD], batch: 2, ...quiet };

function read(file: string) {
  const result = SafetensorsFile.open(file);
  const out = {
    names: result.names.sort(),
    features: result.readFloat32('features'),
    featureShape: result.info('features').shape,
    labels: result.has('labels') ? [...result.readInt32('labels')] : undefined,
    metadata: result.metadata,
  };
  result.close();
  return out;
}

describe('dataset: embed and data commands end to end', () => {
  let folder: string;
  before(async () => {
    folder = tempFolder();
    fs.mkdirSync(path.join(folder, 'cifar-100-binary'));
    fs.writeFileSync(path.join(folder, 'cifar-100-binary', 'test.bin'), cifar100Bytes([[1, 3], [2, 8], [3, 5]]));
    for (const [cls, size] of [['dog', 40], ['cat', 20]] as const) {
      fs.mkdirSync(path.join(folder, 'pets', 'val', cls), { recursive: true });
      await sharp(Buffer.alloc(size * size * 3, cls === 'dog' ? 200 : 50), { raw: { width: size, height: size, channels: 3 } })
        .png()
        .toFile(path.join(folder, 'pets', 'val', cls, 'a.png'));
    }
  });

  it('embeds cifar100:DIR:test at native size, equal to the model on the raw pixels', async () => {
    const out = path.join(folder, 'cifar.safetensors');
    const result = await embed({ ...defaults, checkpoint: CHECKPOINT, data: `cifar100:${folder}:test`, out });
    expect(result).to.deep.equal({ count: 3, width: 128, classes: 10, skipped: 0 });
    const written = read(out);
    expect(written.names).to.deep.equal(['features', 'labels', 'logits']);
    expect(written.labels).to.deep.equal([3, 8, 5]);
    expect(written.metadata.data).to.equal(`cifar100:${folder}:test`);
    expect(written.metadata.transform).to.match(/^native: Normalize/);

    // Reference: the old path (uint8 tensor, normalizeImages, embedCls) on the decoded pixels.
    const { model } = loadVit(CHECKPOINT);
    const bytes = cifar100Bytes([[1, 3], [2, 8], [3, 5]]);
    const hwc = new Int32Array(3 * 32 * 32 * 3);
    for (let r = 0; r < 3; r++) for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) hwc[r * 3072 + p * 3 + c] = bytes[r * 3074 + 2 + c * 1024 + p];
    const expected = tf.tidy(() => model.embedCls(normalizeImages(tf.tensor4d(hwc, [3, 32, 32, 3], 'int32'), IMAGENET_MEAN, IMAGENET_STD)));
    expect(maxAbsDifference(written.features, expected)).to.be.below(1e-4);
    expected.dispose();
    model.dispose();
  });

  it('embeds an image folder and grey digits, resizing to the model size when images do not fit', async () => {
    const messages: string[] = [];
    const pets = path.join(folder, 'pets.safetensors');
    await embed({ ...defaults, checkpoint: CHECKPOINT, data: 'imagefolder:pets:val', out: pets, baseDir: folder, log: (m) => messages.push(m) });
    expect(read(pets).featureShape).to.deep.equal([2, 128]);
    expect(read(pets).labels).to.deep.equal([0, 1]);
    expect(messages[0]).to.match(/images vary in size; resizing them to 32x32/);
    const digits = path.join(folder, 'digits.safetensors');
    await embed({ ...defaults, checkpoint: CHECKPOINT, data: 'mnist:test?classes=5-6&perClass=2', out: digits });
    expect(read(digits).labels).to.deep.equal([0, 0, 1, 1]);
    const knn = path.join(folder, 'knn.safetensors');
    await embed({ ...defaults, checkpoint: CHECKPOINT, data: 'imagefolder:pets/val', out: knn, baseDir: folder, transform: 'dino-knn', size: 16 });
    expect(read(knn).metadata.transform).to.match(/^dino-knn: Resize\(18, bicubic\) -> CenterCrop\(16\)/);
  });

  it('skips unreadable images when asked, recording which source images the rows are', async () => {
    const root = path.join(folder, 'broken');
    fs.mkdirSync(path.join(root, 'a'), { recursive: true });
    for (const name of ['1.png', '3.png']) {
      await sharp(Buffer.alloc(32 * 32 * 3, 99), { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(path.join(root, 'a', name));
    }
    fs.writeFileSync(path.join(root, 'a', '2.png'), 'not a png');
    const out = path.join(folder, 'broken.safetensors');
    const stderr = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    let result;
    try {
      result = await embed({ ...defaults, checkpoint: CHECKPOINT, data: `imagefolder:${root}?onUnreadable=skip`, out });
    } finally {
      process.stderr.write = stderr;
    }
    expect(result).to.deep.include({ count: 2, skipped: 1 });
    const file = SafetensorsFile.open(out);
    expect([...file.readInt32('indices')]).to.deep.equal([0, 2]);
    file.close();
  });

  it('embeds IDX and safetensors sources; keeps the safetensors errors naming file and tensor', async () => {
    fs.writeFileSync(path.join(folder, 'i.idx'), idxBytes(0x803, [2, 32, 32], new Uint8Array(2 * 1024).fill(9)));
    fs.writeFileSync(path.join(folder, 'l.idx'), idxBytes(0x801, [2], Uint8Array.from([4, 1])));
    const idxOut = path.join(folder, 'idx.safetensors');
    await embed({ ...defaults, checkpoint: CHECKPOINT, data: 'idx:i.idx:l.idx', out: idxOut, baseDir: folder });
    expect(read(idxOut).labels).to.deep.equal([4, 1]);

    const images = path.join(folder, 'images.safetensors');
    writeSafetensors(images, [['images', { dtype: 'U8', shape: [1, 32, 32, 3], data: new Uint8Array(3072).fill(77) }]]);
    const unlabelled = path.join(folder, 'unlabelled.safetensors');
    await embed({ ...defaults, checkpoint: CHECKPOINT, data: `safetensors:${images}`, out: unlabelled });
    expect(read(unlabelled).names).to.deep.equal(['features', 'logits']);

    const flat = path.join(folder, 'flat.safetensors');
    writeSafetensors(flat, [['images', { dtype: 'U8', shape: [1, 3072], data: new Uint8Array(3072) }]]);
    let error: unknown;
    try {
      await embed({ ...defaults, checkpoint: CHECKPOINT, data: `safetensors:${flat}`, out: unlabelled });
    } catch (caught) {
      error = caught;
    }
    expect((error as Error).message).to.equal(`${flat}: tensor 'images' has shape [1,3072], expected rank 4 [N, H, W, C]`);
    try {
      await embed({ ...defaults, checkpoint: CHECKPOINT, data: 'cifar100:x', out: unlabelled });
      expect.fail('should have thrown');
    } catch (caught) {
      expect(caught).to.be.instanceOf(UsageError);
      expect((caught as Error).message).to.match(/^--data: data URI 'cifar100:x': expected the split/);
    }
  });

  it('runs `vitpeft embed --data cifar100:DIR:test` and `vitpeft data info` through the command line', async () => {
    const out = path.join(folder, 'cli.safetensors');
    const stderr = process.stderr.write;
    const stdout = process.stdout.write;
    const printed: string[] = [];
    process.stderr.write = ((chunk: string) => printed.push(String(chunk)) > 0) as typeof process.stderr.write;
    process.stdout.write = ((chunk: string) => printed.push(String(chunk)) > 0) as typeof process.stdout.write;
    try {
      await buildProgram().parseAsync(['node', 'vitpeft', 'embed', '--checkpoint', CHECKPOINT, '--data', `cifar100:${folder}:test`, '--out', out, '--batch', '2']);
      await buildProgram().parseAsync(['node', 'vitpeft', 'data', 'info', `cifar100:${folder}:test?classes=3-5`]);
      let error: unknown;
      try {
        await buildProgram().parseAsync(['node', 'vitpeft', 'data', 'fetch', 'imagenet']);
      } catch (caught) {
        error = caught;
      }
      expect(error).to.be.instanceOf(UsageError);
      expect((error as Error).message).to.match(/unknown name 'imagenet' \(expected cifar100, cifar10, fashion-mnist, dino-vitb16\)/);
    } finally {
      process.stderr.write = stderr;
      process.stdout.write = stdout;
    }
    expect(read(out).labels).to.deep.equal([3, 8, 5]);
    expect(printed.join('')).to.match(/embedded 3 images \(128-d features, 10 logits\)/);
    expect(printed.join('')).to.contain('images:   2\nclasses:  3\nshape:    32x32x3');
  });
});
