// A safetensors file holding `images` (U8 [N, H, W, C]) and optional integer `labels` [N].

import { SafetensorsFile } from '../../models/checkpoint/safetensors';
import { MemorySource } from './memorySource';
import { DatasetError } from './source';

/** Reads `images` (U8 [N,H,W,C]) and optional `labels` from a safetensors data file. */
export function readImageFile(path: string): { images: Uint8Array; shape: [number, number, number, number]; labels?: Int32Array } {
  const file = SafetensorsFile.open(path);
  try {
    const info = file.info('images');
    if (info.dtype !== 'U8') throw new DatasetError(path, `tensor 'images' has dtype ${info.dtype}, expected U8`);
    if (info.shape.length !== 4) throw new DatasetError(path, `tensor 'images' has shape [${info.shape}], expected rank 4 [N, H, W, C]`);
    const shape = info.shape as [number, number, number, number];
    if (![1, 3].includes(shape[3])) throw new DatasetError(path, `tensor 'images' has ${shape[3]} channels (shape [${info.shape}]), expected 1 or 3`);
    let labels: Int32Array | undefined;
    if (file.has('labels')) {
      const labelInfo = file.info('labels');
      if (labelInfo.shape.length !== 1 || labelInfo.shape[0] !== shape[0]) {
        throw new DatasetError(path, `tensor 'labels' has shape [${labelInfo.shape}], expected [${shape[0]}] (one per image)`);
      }
      labels = file.readInt32('labels');
      const negative = labels.findIndex((label) => label < 0);
      if (negative >= 0) throw new DatasetError(path, `tensor 'labels' holds ${labels[negative]} at index ${negative}; labels must be >= 0`);
    }
    return { images: file.readUint8('images'), shape, labels };
  } finally {
    file.close();
  }
}

export function openSafetensorsImages(path: string): MemorySource {
  const { images, shape, labels } = readImageFile(path);
  return new MemorySource({ description: `safetensors ${path}`, pixels: images, shape, labels });
}
