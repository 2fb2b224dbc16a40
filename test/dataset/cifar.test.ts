import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { readTarMembers, TarError } from '../../common/tarGz';
import { decodeCifarRecords, openCifar } from '../../stages/dataset/cifar';
import { DatasetError } from '../../stages/dataset/source';
import { cifar100Bytes, cifar10Bytes, knownPixel, tarBytes, tempFolder } from '../helpers/datasetFixtures';

const FINE_NAMES = Array.from({ length: 100 }, (_, i) => `fine${i}`).join('\n') + '\n';
const COARSE_NAMES = Array.from({ length: 20 }, (_, i) => `coarse${i}`).join('\n') + '\n';

function expectKnownPixels(pixels: Uint8Array, record: number): void {
  // HWC: pixel (y, x) channel c at (y * 32 + x) * 3 + c.
  for (const [y, x] of [[0, 0], [0, 31], [5, 17], [31, 0], [31, 31]]) {
    for (let c = 0; c < 3; c++) expect(pixels[(y * 32 + x) * 3 + c], `record ${record} (${y},${x}) channel ${c}`).to.equal(knownPixel(record, c, y, x));
  }
  let mismatches = 0;
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) if (pixels[(y * 32 + x) * 3 + c] !== knownPixel(record, c, y, x)) mismatches++;
  expect(mismatches).to.equal(0);
}

describe('dataset: CIFAR binary', () => {
  const labels: Array<[number, number]> = [
    [4, 30],
    [19, 99],
    [0, 0],
  ];
  let folder: string;

  before(() => {
    folder = tempFolder();
    const extracted = path.join(folder, 'cifar-100-binary');
    fs.mkdirSync(extracted);
    fs.writeFileSync(path.join(extracted, 'test.bin'), cifar100Bytes(labels));
    fs.writeFileSync(path.join(extracted, 'train.bin'), cifar100Bytes([[1, 2]]));
    fs.writeFileSync(path.join(extracted, 'fine_label_names.txt'), FINE_NAMES);
    fs.writeFileSync(path.join(extracted, 'coarse_label_names.txt'), COARSE_NAMES);
  });

  it('decodes CIFAR-100 records byte for byte: planar R, G, B to HWC, fine labels, label names', async () => {
    const source = await openCifar({ variant: 'cifar100', path: path.join(folder, 'cifar-100-binary'), split: 'test' });
    expect(source.size).to.equal(3);
    expect(source.numClasses).to.equal(100);
    expect(source.imageShape).to.deep.equal([32, 32, 3]);
    expect(source.classNames?.[30]).to.equal('fine30');
    for (let r = 0; r < 3; r++) {
      const sample = source.sample(r);
      expect([sample.height, sample.width, sample.channels, sample.label]).to.deep.equal([32, 32, 3, labels[r][1]]);
      expectKnownPixels(sample.pixels, r);
    }
  });

  it('offers the coarse labels and finds the extracted folder inside a parent folder', async () => {
    const source = await openCifar({ variant: 'cifar100', path: folder, split: 'test', labels: 'coarse' });
    expect([0, 1, 2].map((i) => source.labelOf(i))).to.deep.equal([4, 19, 0]);
    expect(source.numClasses).to.equal(20);
    expect(source.classNames?.[19]).to.equal('coarse19');
  });

  it('reads straight from the .tar.gz, identical to the extracted folder', async () => {
    const archive = path.join(folder, 'cifar-100-binary.tar.gz');
    const tar = tarBytes([
      ['cifar-100-binary/coarse_label_names.txt', Buffer.from(COARSE_NAMES)],
      ['cifar-100-binary/train.bin', cifar100Bytes([[1, 2]])],
      ['cifar-100-binary/test.bin', cifar100Bytes(labels)],
      ['cifar-100-binary/fine_label_names.txt', Buffer.from(FINE_NAMES)],
    ]);
    fs.writeFileSync(archive, zlib.gzipSync(tar));
    const fromArchive = await openCifar({ variant: 'cifar100', path: archive, split: 'test' });
    const fromFolder = await openCifar({ variant: 'cifar100', path: path.join(folder, 'cifar-100-binary'), split: 'test' });
    expect(fromArchive.size).to.equal(3);
    expect(fromArchive.classNames).to.deep.equal(fromFolder.classNames);
    for (let r = 0; r < 3; r++) {
      expect(Buffer.from(fromArchive.sample(r).pixels).equals(Buffer.from(fromFolder.sample(r).pixels))).to.equal(true);
      expect(fromArchive.labelOf(r)).to.equal(fromFolder.labelOf(r));
    }
    expect(fromArchive.description).to.contain(archive);
  });

  it('reads CIFAR-10: five training batches in order, one label byte, batches.meta.txt names', async () => {
    const cifar10 = path.join(folder, 'cifar-10-batches-bin');
    fs.mkdirSync(cifar10);
    for (let b = 1; b <= 5; b++) fs.writeFileSync(path.join(cifar10, `data_batch_${b}.bin`), cifar10Bytes([b, 9 - b], (b - 1) * 2));
    fs.writeFileSync(path.join(cifar10, 'test_batch.bin'), cifar10Bytes([3]));
    fs.writeFileSync(path.join(cifar10, 'batches.meta.txt'), 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n');
    const train = await openCifar({ variant: 'cifar10', path: folder, split: 'train' });
    expect(train.size).to.equal(10);
    expect(Array.from({ length: 10 }, (_, i) => train.labelOf(i))).to.deep.equal([1, 8, 2, 7, 3, 6, 4, 5, 5, 4]);
    for (let r = 0; r < 10; r++) expectKnownPixels(train.sample(r).pixels, r);
    expect(train.classNames?.[9]).to.equal('truck');
    const test = await openCifar({ variant: 'cifar10', path: cifar10, split: 'test' });
    expect(test.size).to.equal(1);
    expect(test.labelOf(0)).to.equal(3);
  });

  it('rejects a file whose length is not a multiple of 3,074 bytes, naming it', async () => {
    const bad = tempFolder();
    fs.writeFileSync(path.join(bad, 'test.bin'), Buffer.concat([cifar100Bytes([[1, 1]]), Buffer.alloc(100)]));
    let error: unknown;
    try {
      await openCifar({ variant: 'cifar100', path: bad, split: 'test' });
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(DatasetError);
    expect((error as Error).message).to.equal(
      `${path.join(bad, 'test.bin')}: 3,174 bytes is not a whole number of 3,074-byte cifar100 records (1 records and 100 bytes left over); the file is truncated or not cifar100 binary`,
    );
  });

  it('rejects labels out of range and a missing folder, naming the path', async () => {
    expect(() => decodeCifarRecords(cifar100Bytes([[0, 100]]), 'cifar100', 'fine', 'x.bin')).to.throw(DatasetError, /^x\.bin: record 0 has fine label 100, expected 0\.\.99$/);
    const missing = path.join(folder, 'nowhere');
    let error: unknown;
    try {
      await openCifar({ variant: 'cifar100', path: missing, split: 'train' });
    } catch (caught) {
      error = caught;
    }
    expect((error as Error).message).to.match(new RegExp(`^${missing}: no such file or folder`));
    const empty = tempFolder();
    try {
      await openCifar({ variant: 'cifar10', path: empty, split: 'train' });
      expect.fail('should have thrown');
    } catch (caught) {
      expect((caught as Error).message).to.match(/found neither data_batch_1\.bin.*vitpeft data fetch cifar10/);
    }
  });
});

describe('dataset: tar reader', () => {
  it('returns only the selected members, with long (GNU) names and data not a multiple of 512', async () => {
    const folder = tempFolder();
    const longName = `${'deep/'.repeat(30)}file.bin`;
    const archive = path.join(folder, 'a.tar');
    const payload = Buffer.from(Array.from({ length: 1500 }, (_, i) => i % 251));
    fs.writeFileSync(archive, tarBytes([['skip.txt', Buffer.from('no')], [longName, payload], ['empty', Buffer.alloc(0)]]));
    const members = await readTarMembers(archive, (name) => name !== 'skip.txt');
    expect([...members.keys()]).to.deep.equal([longName, 'empty']);
    expect(members.get(longName)!.equals(payload)).to.equal(true);
    expect(members.get('empty')!.length).to.equal(0);
  });

  it('names the archive when it is truncated or not a tar.gz', async () => {
    const folder = tempFolder();
    const truncated = path.join(folder, 't.tar.gz');
    fs.writeFileSync(truncated, zlib.gzipSync(tarBytes([['a.bin', Buffer.alloc(5000, 7)]])).subarray(0, 60));
    let error: unknown;
    try {
      await readTarMembers(truncated, () => true);
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(TarError);
    expect((error as Error).message).to.match(new RegExp(`^${truncated}: (cannot decompress|archive ends inside)`));
    const notTar = path.join(folder, 'n.tar.gz');
    fs.writeFileSync(notTar, zlib.gzipSync(Buffer.alloc(2048, 65)));
    try {
      await readTarMembers(notTar, () => true);
      expect.fail('should have thrown');
    } catch (caught) {
      expect((caught as Error).message).to.equal(`${notTar}: bad tar header checksum`);
    }
  });
});
