// Untrusted files: seeded mutants of safetensors, IDX and CIFAR files (random byte flips,
// truncations, appended bytes, and header edits that keep the framing valid but lie: huge or
// negative lengths and shapes, overlapping offsets, duplicate keys, wrong magic numbers, counts
// larger than the file, tar members claiming gigabytes). Every parse either succeeds (a flipped
// pixel is still a valid file) or throws a typed error whose message names the file: never a
// RangeError or TypeError, never a hang, never an allocation sized by a lie.

import { randomFunction } from '../../common/random';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import * as zlib from 'zlib';
import { TarError } from '../../common/tarGz';
import { SafetensorsError, SafetensorsFile, serializeSafetensors } from '../../models/checkpoint/safetensors';
import { decodeCifarRecords, openCifar } from '../../stages/dataset/cifar';
import { openIdx, parseIdx, readMaybeGzipped } from '../../stages/dataset/idx';
import { ImageFolderSource } from '../../stages/dataset/imageFolder';
import { DatasetError } from '../../stages/dataset/source';
import { ResumeError, readRunRecord } from '../../pipelines/resume';
import { PipelineSpecError, loadPipelineFile } from '../../pipelines/spec';
import { cifar100Bytes, idxBytes, tarBytes, tempFolder } from '../helpers/datasetFixtures';

type Random = () => number;


const integer = (random: Random, below: number) => Math.floor(random() * below);
const pick = <T>(random: Random, items: readonly T[]): T => items[integer(random, items.length)];

/** Generic mutations: flip bytes, truncate, append, or overwrite a run with one value. */
function blindMutation(random: Random, bytes: Buffer): { name: string; bytes: Buffer } {
  const copy = Buffer.from(bytes);
  switch (integer(random, 4)) {
    case 0: {
      const flips = 1 + integer(random, 8);
      for (let i = 0; i < flips; i++) copy[integer(random, copy.length)] ^= 1 + integer(random, 255);
      return { name: `${flips} byte flip(s)`, bytes: copy };
    }
    case 1: {
      const at = integer(random, copy.length);
      return { name: `truncated at ${at}`, bytes: copy.subarray(0, at) };
    }
    case 2: {
      const extra = Buffer.alloc(1 + integer(random, 64));
      for (let i = 0; i < extra.length; i++) extra[i] = integer(random, 256);
      return { name: `${extra.length} bytes appended`, bytes: Buffer.concat([copy, extra]) };
    }
    default: {
      const at = integer(random, copy.length);
      const length = 1 + integer(random, 16);
      copy.fill(pick(random, [0x00, 0xff, 0x7f, 0x80]), at, Math.min(copy.length, at + length));
      return { name: `${length} bytes overwritten at ${at}`, bytes: copy };
    }
  }
}

// ---------------------------------------------------------------- safetensors

function baseSafetensors(): Buffer {
  return serializeSafetensors(
    [
      ['weight', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
      ['labels', { dtype: 'I32', shape: [4], data: Int32Array.from([0, 1, 2, 3]) }],
      ['images', { dtype: 'U8', shape: [2, 2, 3], data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) }],
      ['big', { dtype: 'I64', shape: [2], data: BigInt64Array.from([5n, 7n]) }],
      ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
    ],
    { format: 'pt', note: 'fuzz' },
  );
}

function splitSafetensors(bytes: Buffer): { header: Record<string, unknown>; data: Buffer } {
  const length = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, unknown>, data: bytes.subarray(8 + length) };
}

function joinSafetensors(headerText: string, data: Buffer, lengthOverride?: bigint): Buffer {
  const header = Buffer.from(headerText, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(lengthOverride ?? BigInt(header.length));
  return Buffer.concat([length, header, data]);
}

/** Header edits that keep the file framed correctly but make its header lie. */
function safetensorsHeaderEdit(random: Random, base: Buffer): { name: string; bytes: Buffer } {
  const { header, data } = splitSafetensors(base);
  const names = Object.keys(header).filter((key) => key !== '__metadata__');
  const target = pick(random, names);
  const entry = () => header[target] as { dtype: unknown; shape: unknown; data_offsets: unknown };
  const text = () => JSON.stringify(header);
  const edits: Array<() => { name: string; bytes: Buffer }> = [
    () => ({ name: 'header length 2^63-1', bytes: joinSafetensors(text(), data, 2n ** 63n - 1n) }),
    () => ({ name: 'header length 2^64-1 (-1 as int64)', bytes: joinSafetensors(text(), data, 2n ** 64n - 1n) }),
    () => ({ name: 'header length past the file by one', bytes: joinSafetensors(text(), data, BigInt(Buffer.byteLength(text()) + data.length + 1)) }),
    () => ({ name: 'header length 0', bytes: joinSafetensors(text(), data, 0n) }),
    () => ({ name: 'header length too short by 3', bytes: joinSafetensors(text(), data, BigInt(Buffer.byteLength(text()) - 3)) }),
    () => {
      entry().shape = pick(random, [[-1], [2 ** 53, 2 ** 53], [1e6, 1e6, 1e6], [1.5], ['2'], 'x', [], [2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31], null]);
      return { name: `shape of '${target}' set to ${JSON.stringify(entry().shape)}`, bytes: joinSafetensors(text(), data) };
    },
    () => {
      const [begin, end] = entry().data_offsets as [number, number];
      const lie = pick(random, [
        [end, begin],
        [begin, end + 4],
        [0, end],
        [begin, 2 ** 53],
        [begin - 4, end - 4],
        [-8, end],
        [begin, 1e300],
        [begin],
        'zero',
      ]);
      entry().data_offsets = lie;
      return { name: `data_offsets of '${target}' set to ${JSON.stringify(lie)}`, bytes: joinSafetensors(text(), data) };
    },
    () => {
      entry().dtype = pick(random, ['F128', 'f32', '', 7, null, 'C64']);
      return { name: `dtype of '${target}' set to ${JSON.stringify(entry().dtype)}`, bytes: joinSafetensors(text(), data) };
    },
    () => {
      const raw = text();
      const duplicate = `${raw.slice(0, -1)},${JSON.stringify(target)}:${JSON.stringify(header[target])}}`;
      return { name: `duplicate key '${target}'`, bytes: joinSafetensors(duplicate, data) };
    },
    () => {
      header.__metadata__ = pick(random, [{ format: 1 }, ['a'], 'text', { nested: { a: 'b' } }]);
      return { name: `__metadata__ set to ${JSON.stringify(header.__metadata__)}`, bytes: joinSafetensors(text(), data) };
    },
    () => ({ name: 'header is a JSON array', bytes: joinSafetensors(JSON.stringify(Object.values(header)), data) }),
    () => ({ name: 'header is deeply nested', bytes: joinSafetensors(`{"x":${'['.repeat(5000)}${']'.repeat(5000)}}`, data) }),
    () => ({ name: 'header is not UTF-8', bytes: Buffer.concat([joinSafetensors(text(), Buffer.alloc(0)).subarray(0, 12), Buffer.from([0xff, 0xfe, 0xc3]), joinSafetensors(text(), data).subarray(15)]) }),
    () => {
      (header[target] as Record<string, unknown>).extra = 1;
      return { name: `unexpected field in '${target}'`, bytes: joinSafetensors(text(), data) };
    },
    () => {
      header.__proto__tensor = header[target];
      const raw = text().replace('"__proto__tensor"', '"__proto__"');
      return { name: "a tensor named '__proto__' sharing bytes", bytes: joinSafetensors(raw, data) };
    },
    () => ({ name: 'data section cut short', bytes: joinSafetensors(text(), data.subarray(0, Math.max(0, data.length - 1 - integer(random, 8)))) }),
    () => ({ name: 'number with 400 digits', bytes: joinSafetensors(text().replace(/"data_offsets":\[0,/, `"data_offsets":[${'9'.repeat(400)},`), data) }),
  ];
  return pick(random, edits)();
}

function readEverySafetensor(file: SafetensorsFile): void {
  for (const name of file.names) {
    const info = file.info(name);
    if (info.dtype === 'U8') file.readUint8(name);
    else if (info.dtype.startsWith('F') || info.dtype === 'BF16') file.readFloat32(name);
    else file.readInt32(name);
  }
}

// ---------------------------------------------------------------- IDX and CIFAR

function idxHeaderEdit(random: Random, images: Buffer, labels: Buffer): { name: string; images: Buffer; labels: Buffer } {
  const edited: { images: Buffer; labels: Buffer } = { images: Buffer.from(images), labels: Buffer.from(labels) };
  const which = random() < 0.6 ? 'images' : 'labels';
  const bytes = edited[which];
  const dims = which === 'images' ? 3 : 1;
  const choice = integer(random, 5);
  if (choice === 0) {
    const magic = pick(random, [0x0803, 0x0801, 0x0c03, 0x0800, 0xffffffff, 0x08030000]);
    bytes.writeUInt32BE(magic >>> 0, 0);
    return { name: `${which} magic set to 0x${(magic >>> 0).toString(16)}`, ...edited };
  }
  const d = integer(random, dims);
  const value = pick(random, [0, 0xffffffff, 0x7fffffff, 65536, bytes.readUInt32BE(4 + 4 * d) + 1]);
  if (choice <= 3) {
    bytes.writeUInt32BE(value >>> 0, 4 + 4 * d);
    return { name: `${which} dimension ${d} set to ${value}`, ...edited };
  }
  // A count that no longer matches the other file.
  edited.labels = idxBytes(0x801, [labels.readUInt32BE(4) - 1], labels.subarray(8, labels.length - 1));
  return { name: 'one label fewer than images', ...edited };
}

function tarHeaderEdit(random: Random, archive: Buffer): { name: string; bytes: Buffer } {
  const tar = Buffer.from(archive);
  const resum = () => {
    tar.write('        ', 148, 'ascii');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += tar[i];
    tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  };
  switch (integer(random, 5) % 4) {
    case 0: {
      // A member that claims gigabytes (GNU base-256), checksum fixed so the header is believed.
      const size = pick(random, [2 ** 33, 2 ** 31, 3 * 2 ** 30, 2 ** 30]);
      tar.fill(0, 124, 136);
      tar[124] = 0x80;
      tar.writeUIntBE(size, 130, 6);
      resum();
      return { name: `tar member size ${size / 2 ** 30} GiB (base-256)`, bytes: zlib.gzipSync(tar) };
    }
    case 1: {
      tar.write('77777777777\0', 124, 'ascii');
      resum();
      return { name: 'tar member size 8^11-1 (octal)', bytes: zlib.gzipSync(tar) };
    }
    case 2: {
      tar.write('1x3\0', 124, 'ascii');
      resum();
      return { name: 'tar size field not octal', bytes: zlib.gzipSync(tar) };
    }
    default: {
      const gz = zlib.gzipSync(tar);
      gz.writeUInt32LE(0xffffffff, gz.length - 4); // ISIZE trailer lies
      return { name: 'gzip ISIZE trailer 4 GiB', bytes: gz };
    }
  }
}

// ---------------------------------------------------------------- pipeline files

function tinySpec(): Record<string, unknown> {
  return {
    name: 'tiny',
    model: { checkpoint: 'model.safetensors', heads: 2 },
    data: { train: 'cifar100:DIR:train', test: 'cifar100:DIR:test', retention: { bank: 'mnist:train', query: 'mnist:test' } },
    preprocess: { size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    train: { steps: 50, batchSize: 16, lr: 0.01, warmupSteps: 5, checkpointEvery: 10 },
    evaluate: { every: 25, knn: { k: [10, 20], temperature: 0.07 } },
    methods: [{ method: 'full' }, { method: 'lora', rank: 4, train: { lr: 0.05 } }, { method: 'block', p: 2 }],
  };
}

// ---------------------------------------------------------------- the run

interface Outcome {
  readonly format: string;
  readonly mutation: string;
  readonly result: 'valid' | string;
}

const TYPED = [SafetensorsError, DatasetError, TarError, PipelineSpecError, ResumeError] as const;

function checkError(error: unknown, label: string, mutation: string): string {
  const typed = TYPED.find((type) => error instanceof type);
  if (!typed) throw new Error(`${mutation}: untyped ${(error as Error)?.name ?? typeof error}: ${(error as Error)?.message ?? String(error)}`);
  expect((error as Error).message, `${mutation}: the message names the file`).to.include(label);
  return (error as Error).name;
}

describe('fuzz: mutated safetensors, IDX, CIFAR, image and pipeline files end in typed errors', function () {
  this.timeout(60_000);
  const outcomes: Outcome[] = [];
  let folder: string;
  const baselineMemory = () => process.memoryUsage().arrayBuffers;
  let peakGrowth = 0;
  let start = 0;

  before(() => {
    folder = tempFolder('vitpeft-fuzz-');
    start = baselineMemory();
  });

  const attempt = async (format: string, mutation: string, label: string, parse: () => unknown | Promise<unknown>): Promise<void> => {
    const began = Date.now();
    let result = 'valid';
    try {
      await parse();
    } catch (error) {
      result = checkError(error, label, `${format} (${mutation})`);
    }
    const took = Date.now() - began;
    expect(took, `${format} (${mutation}) took ${took} ms`).to.be.below(2000);
    peakGrowth = Math.max(peakGrowth, baselineMemory() - start);
    outcomes.push({ format, mutation, result });
  };

  it('safetensors: 300 mutants (180 blind, 120 header edits), read from memory and from disk', async () => {
    const random = randomFunction(0x5afe);
    const base = baseSafetensors();
    for (let i = 0; i < 300; i++) {
      const { name, bytes } = i < 180 ? blindMutation(random, base) : safetensorsHeaderEdit(random, base);
      const label = `mutant-${i}.safetensors`;
      if (i % 5 === 0) {
        const file = path.join(folder, label);
        fs.writeFileSync(file, bytes);
        await attempt('safetensors', name, label, () => {
          const opened = SafetensorsFile.open(file);
          try {
            readEverySafetensor(opened);
          } finally {
            opened.close();
          }
        });
      } else {
        await attempt('safetensors', name, label, () => readEverySafetensor(SafetensorsFile.fromBuffer(bytes, label)));
      }
    }
  });

  it('safetensors: a PyTorch pickle (zip or bare) is refused as such, never unpickled', () => {
    for (const [kind, bytes] of [
      ['zip', Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(60)])],
      ['pickle', Buffer.concat([Buffer.from([0x80, 0x02, 0x7d, 0x71]), Buffer.alloc(60)])],
    ] as const) {
      expect(() => SafetensorsFile.fromBuffer(bytes, `model-${kind}.pth`)).to.throw(SafetensorsError, new RegExp(`model-${kind}\\.pth: looks like a PyTorch pickle`));
    }
  });

  it('IDX: 150 mutants of image and label files, plain and gzipped', async () => {
    const random = randomFunction(0x1d8);
    const images = idxBytes(0x803, [3, 2, 3], Uint8Array.from({ length: 18 }, (_, i) => i));
    const labels = idxBytes(0x801, [3], Uint8Array.from([1, 0, 9]));
    for (let i = 0; i < 150; i++) {
      const gzip = i % 3 === 0;
      let mutated: { name: string; images: Buffer; labels: Buffer };
      if (i < 90) {
        const which = random() < 0.6 ? 'images' : 'labels';
        const blind = blindMutation(random, gzip ? zlib.gzipSync(which === 'images' ? images : labels) : which === 'images' ? images : labels);
        mutated = { name: `${which}: ${blind.name}${gzip ? ' (of the gzip)' : ''}`, images: which === 'images' ? blind.bytes : images, labels: which === 'labels' ? blind.bytes : labels };
        if (gzip) mutated[which === 'images' ? 'labels' : 'images'] = zlib.gzipSync(mutated[which === 'images' ? 'labels' : 'images']);
      } else {
        const edit = idxHeaderEdit(random, images, labels);
        mutated = gzip ? { ...edit, images: zlib.gzipSync(edit.images), labels: zlib.gzipSync(edit.labels) } : edit;
      }
      const imageFile = path.join(folder, `mutant-${i}-images.idx${gzip ? '.gz' : ''}`);
      const labelFile = path.join(folder, `mutant-${i}-labels.idx${gzip ? '.gz' : ''}`);
      fs.writeFileSync(imageFile, mutated.images);
      fs.writeFileSync(labelFile, mutated.labels);
      await attempt('idx', mutated.name, `mutant-${i}-`, () => openIdx({ images: imageFile, labels: labelFile, numClasses: 10 }));
      if (!gzip) await attempt('idx', `${mutated.name} (parseIdx from memory)`, `mutant-${i}`, () => parseIdx(mutated.images, 3, `mutant-${i}`));
    }
  });

  it('IDX: a gzip that inflates past the limit is refused without inflating it all', () => {
    const bomb = path.join(folder, 'bomb-images.idx.gz');
    fs.writeFileSync(bomb, zlib.gzipSync(Buffer.alloc(8 * 2 ** 20)));
    expect(() => readMaybeGzipped(bomb, 2 ** 20)).to.throw(DatasetError, /bomb-images\.idx\.gz: decompresses to more than 1,048,576 bytes/);
  });

  it('CIFAR: 120 mutants of record files and 40 of .tar.gz archives', async () => {
    const random = randomFunction(0xc1fa);
    const records = cifar100Bytes([
      [3, 40],
      [19, 99],
      [0, 0],
    ]);
    for (let i = 0; i < 120; i++) {
      let name: string;
      let bytes: Buffer;
      if (i < 80) ({ name, bytes } = blindMutation(random, records));
      else {
        bytes = Buffer.from(records);
        const record = integer(random, 3) * 3074;
        const labelByte = pick(random, [0, 1]);
        bytes[record + labelByte] = pick(random, [100, 128, 255, 20]);
        name = `record ${record / 3074} ${labelByte === 0 ? 'coarse' : 'fine'} label set to ${bytes[record + labelByte]}`;
      }
      const label = `mutant-${i}/train.bin`;
      await attempt('cifar', name, label, () => decodeCifarRecords(bytes, 'cifar100', 'fine', label));
      await attempt('cifar', `${name} (coarse)`, label, () => decodeCifarRecords(bytes, 'cifar100', 'coarse', label));
    }
    const names = Buffer.from(Array.from({ length: 100 }, (_, i) => `class${i}`).join('\n'));
    const tar = tarBytes([
      ['cifar-100-binary/train.bin', records],
      ['cifar-100-binary/fine_label_names.txt', names],
    ]);
    for (let i = 0; i < 40; i++) {
      const { name, bytes } = i < 24 ? blindMutation(random, zlib.gzipSync(tar)) : tarHeaderEdit(random, tar);
      const archive = path.join(folder, `mutant-${i}.tar.gz`);
      fs.writeFileSync(archive, bytes);
      await attempt('cifar archive', name, archive, () => openCifar({ variant: 'cifar100', path: archive, split: 'train' }));
    }
  });

  it('images: 60 mutants of a PNG and a JPEG, decoded through an image folder', async () => {
    const random = randomFunction(0x1a6e);
    const raw = Buffer.from(Uint8Array.from({ length: 16 * 16 * 3 }, (_, i) => (i * 37) % 256));
    const encoded = {
      png: await sharp(raw, { raw: { width: 16, height: 16, channels: 3 } }).png().toBuffer(),
      jpg: await sharp(raw, { raw: { width: 16, height: 16, channels: 3 } }).jpeg().toBuffer(),
    };
    for (let i = 0; i < 60; i++) {
      const kind = i % 2 === 0 ? 'png' : 'jpg';
      const { name, bytes } = blindMutation(random, encoded[kind]);
      const root = path.join(folder, `images-${i}`);
      fs.mkdirSync(path.join(root, 'class'), { recursive: true });
      const file = path.join(root, 'class', `mutant-${i}.${kind}`);
      fs.writeFileSync(file, bytes);
      await attempt('image', `${kind}: ${name}`, file, () => new ImageFolderSource({ root }).read(0));
    }
  });

  it('pipeline files (JSON and YAML) and run records: 120 mutants', async () => {
    const random = randomFunction(0x919e);
    const json = Buffer.from(JSON.stringify(tinySpec(), null, 2));
    const yaml = Buffer.from(
      Object.entries(tinySpec())
        .map(([key, value]) => `${key}: ${JSON.stringify(value)}`)
        .join('\n'),
    );
    const record = Buffer.from(JSON.stringify({ format: 'vitpeft-run/1', pipeline: tinySpec(), file: '/x/tiny.json', baseDir: '/x', options: { seeds: 2 } }, null, 2));
    for (let i = 0; i < 120; i++) {
      const kind = pick(random, ['json', 'yaml', 'record'] as const);
      const { name, bytes } = blindMutation(random, kind === 'json' ? json : kind === 'yaml' ? yaml : record);
      if (kind === 'record') {
        const runDir = path.join(folder, `run-${i}`);
        fs.mkdirSync(runDir);
        fs.writeFileSync(path.join(runDir, 'run.json'), bytes);
        await attempt('run record', name, runDir, () => readRunRecord(runDir));
      } else {
        const file = path.join(folder, `pipeline-${i}.${kind}`);
        fs.writeFileSync(file, bytes);
        await attempt(`pipeline ${kind}`, name, file, () => loadPipelineFile(file));
      }
    }
  });

  after(() => {
    const byFormat = new Map<string, Map<string, number>>();
    for (const outcome of outcomes) {
      const counts = byFormat.get(outcome.format) ?? new Map<string, number>();
      counts.set(outcome.result, (counts.get(outcome.result) ?? 0) + 1);
      byFormat.set(outcome.format, counts);
    }
    const lines = [...byFormat].map(([format, counts]) => `${format}: ${[...counts].map(([result, n]) => `${n} ${result}`).join(', ')}`);
    // eslint-disable-next-line no-console
    console.log(`      fuzz: ${outcomes.length} parses; ${lines.join('; ')}; peak ArrayBuffer growth ${(peakGrowth / 2 ** 20).toFixed(1)} MiB`);
    if (process.env.VITPEFT_FUZZ_LOG) fs.writeFileSync(process.env.VITPEFT_FUZZ_LOG, outcomes.map((o) => `${o.format}\t${o.mutation}\t${o.result}`).join('\n'));
  });

  it('has tried at least 500 mutants, and none allocated from a lying size', () => {
    expect(outcomes.length).to.be.at.least(500);
    expect(peakGrowth, 'ArrayBuffer memory growth during the fuzz run').to.be.below(64 * 2 ** 20);
  });
});
