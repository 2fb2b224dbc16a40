import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { FASHION_MNIST_CLASSES, openFashionMnist, openIdx, parseIdx } from '../../stages/dataset/idx';
import { DatasetError } from '../../stages/dataset/source';
import { idxBytes, tempFolder } from '../helpers/datasetFixtures';

// Three 2x3 images with known bytes, and their labels.
const PIXELS = Uint8Array.from([0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 250, 251, 252, 253, 254, 255]);
const LABELS = Uint8Array.from([7, 0, 9]);

describe('dataset: IDX files', () => {
  let folder: string;
  before(() => {
    folder = tempFolder();
    fs.writeFileSync(path.join(folder, 'images.idx'), idxBytes(0x803, [3, 2, 3], PIXELS));
    fs.writeFileSync(path.join(folder, 'labels.idx'), idxBytes(0x801, [3], LABELS));
    fs.writeFileSync(path.join(folder, 'images.idx.gz'), zlib.gzipSync(idxBytes(0x803, [3, 2, 3], PIXELS)));
    fs.writeFileSync(path.join(folder, 'labels.idx.gz'), zlib.gzipSync(idxBytes(0x801, [3], LABELS)));
  });

  for (const gz of ['', '.gz']) {
    it(`decodes images and labels byte for byte${gz ? ' (gzipped)' : ''}, as one grey channel`, () => {
      const source = openIdx({ images: path.join(folder, `images.idx${gz}`), labels: path.join(folder, `labels.idx${gz}`) });
      expect(source.size).to.equal(3);
      expect(source.imageShape).to.deep.equal([2, 3, 1]);
      expect(source.numClasses).to.equal(10);
      expect([...source.sample(1).pixels]).to.deep.equal([10, 11, 12, 13, 14, 15]);
      expect([...source.sample(2).pixels]).to.deep.equal([250, 251, 252, 253, 254, 255]);
      expect([0, 1, 2].map((i) => source.labelOf(i))).to.deep.equal([7, 0, 9]);
    });
  }

  it('rejects a wrong magic number, naming the file and both numbers', () => {
    const file = path.join(folder, 'swapped.idx');
    fs.writeFileSync(file, idxBytes(0x801, [3], LABELS));
    expect(() => openIdx({ images: file, labels: path.join(folder, 'labels.idx') })).to.throw(
      DatasetError,
      `${file}: IDX magic number is 0x00000801, expected 0x00000803 (unsigned-byte images, 3 dimensions)`,
    );
  });

  it('rejects a truncated file, gzipped or not, naming it', () => {
    const truncated = path.join(folder, 'truncated.idx');
    fs.writeFileSync(truncated, idxBytes(0x803, [3, 2, 3], PIXELS).subarray(0, 30));
    expect(() => openIdx({ images: truncated, labels: path.join(folder, 'labels.idx') })).to.throw(
      DatasetError,
      `${truncated}: IDX header promises [3, 2, 3] = 18 data bytes but the file holds 14; it is truncated`,
    );
    const truncatedGz = path.join(folder, 'truncated.idx.gz');
    fs.writeFileSync(truncatedGz, zlib.gzipSync(idxBytes(0x803, [3, 2, 3], PIXELS)).subarray(0, 25));
    expect(() => openIdx({ images: truncatedGz, labels: path.join(folder, 'labels.idx') })).to.throw(DatasetError, new RegExp(`^${truncatedGz}: cannot decompress`));
    expect(() => parseIdx(Uint8Array.from([0, 0, 8]), 1, 'tiny')).to.throw(/^tiny: file is 3 bytes, too short/);
    expect(() => parseIdx(Uint8Array.from([0, 0, 8, 3, 0, 0]), 3, 'head')).to.throw(/^head: file is 6 bytes, too short for its 16-byte IDX header/);
  });

  it('rejects a label count that differs from the image count, and a missing file', () => {
    const labels = path.join(folder, 'two-labels.idx');
    fs.writeFileSync(labels, idxBytes(0x801, [2], Uint8Array.from([1, 2])));
    expect(() => openIdx({ images: path.join(folder, 'images.idx'), labels })).to.throw(DatasetError, /holds 2 labels but .*images\.idx holds 3 images/);
    expect(() => openIdx({ images: path.join(folder, 'none.idx'), labels })).to.throw(DatasetError, `${path.join(folder, 'none.idx')}: no such file`);
  });

  it('opens Fashion-MNIST from the first folder that has its files, with class names', () => {
    const fashion = tempFolder();
    fs.writeFileSync(path.join(fashion, 't10k-images-idx3-ubyte.gz'), zlib.gzipSync(idxBytes(0x803, [3, 2, 3], PIXELS)));
    fs.writeFileSync(path.join(fashion, 't10k-labels-idx1-ubyte'), idxBytes(0x801, [3], LABELS));
    const source = openFashionMnist('test', [path.join(fashion, 'absent'), fashion]);
    expect(source.size).to.equal(3);
    expect(source.classNames).to.deep.equal(FASHION_MNIST_CLASSES);
    expect(() => openFashionMnist('train', [fashion])).to.throw(DatasetError, /no Fashion-MNIST train-images-idx3-ubyte\[\.gz\].*vitpeft data fetch fashion-mnist/);
  });
});
