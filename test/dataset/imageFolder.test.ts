import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { ImageFolderSource } from '../../stages/dataset/imageFolder';
import { DatasetError } from '../../stages/dataset/source';
import { tempFolder } from '../helpers/datasetFixtures';

// 3x2 RGB image with distinct bytes.
const RGB = Buffer.from([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180]);

async function writeImage(file: string, format: 'png' | 'jpeg', pixels: Buffer, width: number, height: number, channels: 1 | 3 | 4): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const image = sharp(pixels, { raw: { width, height, channels } });
  await (format === 'png' ? image.png() : image.jpeg({ quality: 95 })).toFile(file);
}

describe('dataset: image folders', () => {
  let root: string;
  before(async () => {
    root = tempFolder();
    // Classes sort as b_cat < n01 < zebra; files within a class by name.
    await writeImage(path.join(root, 'train', 'zebra', 'b.png'), 'png', RGB, 3, 2, 3);
    await writeImage(path.join(root, 'train', 'zebra', 'a.PNG'), 'png', Buffer.from([0, 64, 128, 192, 255, 1]), 3, 2, 1);
    await writeImage(path.join(root, 'train', 'b_cat', 'x.jpg'), 'jpeg', Buffer.alloc(8 * 8 * 3, 200), 8, 8, 3);
    await writeImage(path.join(root, 'train', 'n01', 'one.JPEG'), 'jpeg', Buffer.alloc(4 * 6 * 3, 90), 6, 4, 3);
    await writeImage(path.join(root, 'train', 'n01', 'two.png'), 'png', Buffer.alloc(2 * 2 * 4, 33), 2, 2, 4);
    fs.writeFileSync(path.join(root, 'train', 'n01', 'notes.txt'), 'ignored');
    fs.mkdirSync(path.join(root, 'train', '.hidden'));
  });

  it('indexes classes by sorted folder name and decodes PNG exactly, grey and RGBA as RGB', async () => {
    const source = new ImageFolderSource({ root: path.join(root, 'train') });
    expect(source.classNames).to.deep.equal(['b_cat', 'n01', 'zebra']);
    expect(source.size).to.equal(5);
    expect(source.files.map((f) => path.relative(root, f))).to.deep.equal([
      path.join('train', 'b_cat', 'x.jpg'),
      path.join('train', 'n01', 'one.JPEG'),
      path.join('train', 'n01', 'two.png'),
      path.join('train', 'zebra', 'a.PNG'),
      path.join('train', 'zebra', 'b.png'),
    ]);
    expect([0, 1, 2, 3, 4].map((i) => source.labelOf(i))).to.deep.equal([0, 1, 1, 2, 2]);
    const rgb = (await source.read(4))!;
    expect([rgb.height, rgb.width, rgb.channels, rgb.label]).to.deep.equal([2, 3, 3, 2]);
    expect([...rgb.pixels]).to.deep.equal([...RGB]);
    const grey = (await source.read(3))!;
    expect(grey.channels).to.equal(3);
    expect([...grey.pixels]).to.deep.equal([0, 0, 0, 64, 64, 64, 128, 128, 128, 192, 192, 192, 255, 255, 255, 1, 1, 1]);
    const rgba = (await source.read(2))!;
    expect([rgba.channels, ...rgba.pixels.subarray(0, 3)]).to.deep.equal([3, 33, 33, 33]);
  });

  it('decodes JPEG to the right size, close to the encoded colour', async () => {
    const source = new ImageFolderSource({ root: path.join(root, 'train') });
    const jpeg = (await source.read(1))!;
    expect([jpeg.height, jpeg.width, jpeg.channels]).to.deep.equal([4, 6, 3]);
    for (const value of jpeg.pixels) expect(Math.abs(value - 90)).to.be.at.most(2);
  });

  it('caps the images per class, taking the first by name', () => {
    const source = new ImageFolderSource({ root: path.join(root, 'train'), perClass: 1 });
    expect(source.files.map((f) => path.basename(f))).to.deep.equal(['x.jpg', 'one.JPEG', 'a.PNG']);
  });

  it('fails on an unreadable image with its path by default, or skips it with one warning', async () => {
    const folder = tempFolder();
    await writeImage(path.join(folder, 'a', 'good.png'), 'png', RGB, 3, 2, 3);
    const bad = path.join(folder, 'a', 'bad.jpg');
    fs.writeFileSync(bad, 'this is not a JPEG');
    const failing = new ImageFolderSource({ root: folder });
    let error: unknown;
    try {
      await failing.read(0);
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(DatasetError);
    expect((error as Error).message).to.match(new RegExp(`^${bad}: cannot decode image \\(.+\\); pass onUnreadable=skip`));
    const warnings: string[] = [];
    const skipping = new ImageFolderSource({ root: folder, onUnreadable: 'skip', warn: (message) => warnings.push(message) });
    expect(await skipping.read(0)).to.equal(null);
    expect(await skipping.read(0)).to.equal(null);
    expect((await skipping.read(1))?.width).to.equal(3);
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.match(new RegExp(`^${bad}: cannot decode image .*skipped$`));
  });

  it('names a missing folder, a folder without classes and a class without images', () => {
    const missing = path.join(root, 'val');
    expect(() => new ImageFolderSource({ root: missing })).to.throw(DatasetError, `${missing}: no such folder`);
    const empty = tempFolder();
    expect(() => new ImageFolderSource({ root: empty })).to.throw(DatasetError, `${empty}: holds no class folders`);
    fs.mkdirSync(path.join(empty, 'lonely'));
    expect(() => new ImageFolderSource({ root: empty })).to.throw(DatasetError, `${path.join(empty, 'lonely')}: class folder holds no .jpg/.jpeg/.png images`);
  });
});
