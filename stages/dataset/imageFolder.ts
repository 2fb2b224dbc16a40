// Image folders in the ImageNet (torchvision ImageFolder) layout: ROOT/<class>/<image>, class index
// = position of the folder name in sorted order, images sorted by name within a class. JPEG and
// PNG are decoded with sharp (off the main thread) to 8-bit sRGB without alpha; EXIF orientation
// is ignored, as PIL does. An unreadable image fails with its path, or is skipped with a warning.

import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { DatasetError, DatasetSource, Sample, checkIndex } from './source';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'] as const;

export type UnreadablePolicy = 'fail' | 'skip';

export interface ImageFolderOptions {
  /** The folder of class folders (e.g. imagenet/val). */
  root: string;
  /** Keep at most this many images per class (the first ones in name order). */
  perClass?: number;
  /** What to do with an image that cannot be decoded: fail (default) or skip with a warning. */
  onUnreadable?: UnreadablePolicy;
  /** Where skip warnings go; defaults to stderr. */
  warn?: (message: string) => void;
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function listFolder(folder: string): fs.Dirent[] {
  try {
    return fs.readdirSync(folder, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DatasetError(folder, code === 'ENOENT' ? 'no such folder' : code === 'ENOTDIR' ? 'is not a folder' : `cannot list (${code})`);
  }
}

function isDirectory(folder: string, entry: fs.Dirent): boolean {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return fs.statSync(path.join(folder, entry.name)).isDirectory();
  } catch {
    return false;
  }
}

export class ImageFolderSource implements DatasetSource {
  readonly description: string;
  readonly size: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly files: readonly string[];
  private readonly labels: Int32Array;
  private readonly onUnreadable: UnreadablePolicy;
  private readonly warn: (message: string) => void;
  private readonly warned = new Set<string>();

  constructor(options: ImageFolderOptions) {
    const root = options.root;
    const classNames = listFolder(root)
      .filter((entry) => !entry.name.startsWith('.') && isDirectory(root, entry))
      .map((entry) => entry.name)
      .sort(byCodeUnits);
    if (classNames.length === 0) throw new DatasetError(root, 'holds no class folders (expected ROOT/<class>/<image>.jpg|.png)');
    const files: string[] = [];
    const labels: number[] = [];
    classNames.forEach((className, label) => {
      const classFolder = path.join(root, className);
      let images = listFolder(classFolder)
        .filter((entry) => !entry.name.startsWith('.') && IMAGE_EXTENSIONS.includes(path.extname(entry.name).toLowerCase() as (typeof IMAGE_EXTENSIONS)[number]))
        .map((entry) => entry.name)
        .sort(byCodeUnits);
      if (images.length === 0) throw new DatasetError(classFolder, `class folder holds no ${IMAGE_EXTENSIONS.join('/')} images`);
      if (options.perClass !== undefined) images = images.slice(0, options.perClass);
      for (const image of images) {
        files.push(path.join(classFolder, image));
        labels.push(label);
      }
    });
    this.description = `imagefolder ${root}${options.perClass !== undefined ? ` (at most ${options.perClass} per class)` : ''}`;
    this.size = files.length;
    this.numClasses = classNames.length;
    this.classNames = classNames;
    this.files = files;
    this.labels = Int32Array.from(labels);
    this.onUnreadable = options.onUnreadable ?? 'fail';
    this.warn = options.warn ?? ((message) => process.stderr.write(`vitpeft: warning: ${message}\n`));
  }

  labelOf(index: number): number {
    return this.labels[index];
  }

  async read(index: number): Promise<Sample | null> {
    checkIndex(this, index);
    const file = this.files[index];
    try {
      const { data, info } = await sharp(file, { failOn: 'error' }).toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), height: info.height, width: info.width, channels: info.channels, label: this.labels[index] };
    } catch (error) {
      const reason = (error as Error).message.split('\n')[0];
      if (this.onUnreadable === 'fail') {
        throw new DatasetError(file, `cannot decode image (${reason}); pass onUnreadable=skip to skip unreadable images`);
      }
      if (!this.warned.has(file)) {
        this.warned.add(file);
        this.warn(`${file}: cannot decode image (${reason}); skipped`);
      }
      return null;
    }
  }
}
