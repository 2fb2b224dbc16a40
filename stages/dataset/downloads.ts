// Downloads of the datasets and the pretrained checkpoint from their official locations into a
// cache folder. Each file streams into a temporary file beside its target (.NAME.partial-PID),
// hashed on the way; only when the byte count and the published checksum match is it renamed into
// place, so a failed, truncated or corrupt download never leaves a file that looks complete.
// Failures say where to put the file by hand.
//
// Cache folder: $VITPEFT_CACHE, else $XDG_CACHE_HOME/vitpeft, else ~/.cache/vitpeft; each entry
// goes into its own subfolder (cifar100/, cifar10/, fashion-mnist/, dino-vitb16/).

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LocatedError } from '../../common/errors';

export interface DownloadFile {
  /** File name in the entry's folder. */
  readonly name: string;
  /** Official location first, then mirrors, tried in order. */
  readonly urls: readonly string[];
  readonly checksum: { readonly algorithm: 'md5' | 'sha256'; readonly hex: string };
  /**
   * The host declares the file's sha256 (Hugging Face: the X-Linked-Etag header of a resolve
   * request, with X-Linked-Size). A download that fails the pinned checksum but matches the
   * declared digest is the host's file having changed since the pin: it is kept aside, not used.
   */
  readonly declaredDigest?: 'x-linked-etag';
}

export interface DownloadEntry {
  readonly name: string;
  readonly description: string;
  /** Subfolder of the cache folder. */
  readonly folder: string;
  readonly files: readonly DownloadFile[];
  /** How to use the files once there, e.g. the data URI. */
  readonly usage: (folder: string) => string;
}

const FASHION_BASE = [
  'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
  'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
];

function fashionFile(name: string, md5: string): DownloadFile {
  return { name, urls: FASHION_BASE.map((base) => base + name), checksum: { algorithm: 'md5', hex: md5 } };
}

export const DOWNLOADS = {
  cifar100: {
    name: 'cifar100',
    description: 'CIFAR-100, binary version (161 MB), University of Toronto',
    folder: 'cifar100',
    files: [{ name: 'cifar-100-binary.tar.gz', urls: ['https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz'], checksum: { algorithm: 'md5', hex: '03b5dce01913d631647c71ecec9e9cb8' } }],
    usage: (folder: string) => `--data cifar100:${folder}:train (or :test); read straight from the .tar.gz`,
  },
  cifar10: {
    name: 'cifar10',
    description: 'CIFAR-10, binary version (162 MB), University of Toronto',
    folder: 'cifar10',
    files: [{ name: 'cifar-10-binary.tar.gz', urls: ['https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'], checksum: { algorithm: 'md5', hex: 'c32a1d4ab5d03f1284b67883e8d87530' } }],
    usage: (folder: string) => `--data cifar10:${folder}:train (or :test); read straight from the .tar.gz`,
  },
  'fashion-mnist': {
    name: 'fashion-mnist',
    description: 'Fashion-MNIST, four gzipped IDX files (30 MB), Zalando Research',
    folder: 'fashion-mnist',
    files: [
      fashionFile('train-images-idx3-ubyte.gz', '8d4fb7e6c68d591d4c3dfef9ec88bf0d'),
      fashionFile('train-labels-idx1-ubyte.gz', '25c81989df183df01b3e8a0aad5dffbe'),
      fashionFile('t10k-images-idx3-ubyte.gz', 'bef4ecab320f06d8554ea6380940ec79'),
      fashionFile('t10k-labels-idx1-ubyte.gz', 'bb300cfdad3c16e7a12a480ee83cd310'),
    ],
    usage: (folder: string) => `--data fashion-mnist:${folder}:train (or :test)`,
  },
  'dino-vitb16': {
    name: 'dino-vitb16',
    description: "DINO ViT-B/16 pretrained on ImageNet-1k, timm's vit_base_patch16_224.dino (343 MB), Hugging Face",
    folder: 'dino-vitb16',
    files: [
      {
        name: 'model.safetensors',
        urls: ['https://huggingface.co/timm/vit_base_patch16_224.dino/resolve/main/model.safetensors'],
        checksum: { algorithm: 'sha256', hex: '93181583427d6de3e18ab0e6ee4df35736cfc51a3c1bf9ae0e9b53b1316598dc' },
        declaredDigest: 'x-linked-etag',
      },
    ],
    usage: (folder: string) => `--checkpoint ${path.join(folder, 'model.safetensors')}`,
  },
} as const satisfies Record<string, DownloadEntry>;

export type DownloadName = keyof typeof DOWNLOADS;

export function isDownloadName(name: string): name is DownloadName {
  return Object.prototype.hasOwnProperty.call(DOWNLOADS, name);
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VITPEFT_CACHE) return path.resolve(env.VITPEFT_CACHE);
  if (env.XDG_CACHE_HOME) return path.join(path.resolve(env.XDG_CACHE_HOME), 'vitpeft');
  return path.join(os.homedir(), '.cache', 'vitpeft');
}

export class DownloadError extends LocatedError {}

export interface DownloadOptions {
  /** Give up when no response headers (or no body bytes) arrive for this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Called as bytes arrive; total is undefined without a Content-Length. */
  onProgress?: (received: number, total: number | undefined, url: string) => void;
}

export interface DownloadResult {
  readonly path: string;
  readonly bytes: number;
  /** true when a verified file was already there and nothing was downloaded. */
  readonly reused: boolean;
  readonly url?: string;
}

/** The file's digest in hex. */
export async function fileDigest(file: string, algorithm: 'md5' | 'sha256'): Promise<string> {
  const hash = crypto.createHash(algorithm);
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function describeFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (error as NodeJS.ErrnoException).code;
  const offline = ['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNRESET', 'ETIMEDOUT'];
  if (code && offline.includes(code)) return `cannot connect (${code}${cause?.message ? `: ${cause.message}` : ''}); is this machine offline?`;
  if ((error as Error).name === 'AbortError' || (error as Error).name === 'TimeoutError') return 'timed out waiting for the server';
  return cause?.message ? `${(error as Error).message} (${cause.message})` : (error as Error).message;
}

/** What the host says the file is: Hugging Face's X-Linked-Etag (the LFS object's sha256) and X-Linked-Size. */
interface Declared {
  sha256?: string;
  size?: number;
}

/** A 64-hex sha256 from an ETag-like header (quotes and a weak W/ prefix removed), else undefined. */
export function declaredSha256(header: string | null): string | undefined {
  const value = header?.trim().replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
  return value && /^[0-9a-f]{64}$/.test(value) ? value : undefined;
}

/** The download's checksum disagrees with the pin, but the host's declared digest matches the bytes. */
export class ChangedUpstreamError extends Error {
  constructor(
    readonly keptAside: string,
    message: string,
  ) {
    super(message);
    this.name = 'ChangedUpstreamError';
  }
}

/** GET that follows redirects itself, so headers of every hop (the hub's 302 carries X-Linked-Etag) are seen. */
async function fetchFollowing(url: string, signal: AbortSignal, declared: Declared): Promise<Response> {
  let current = url;
  for (let hop = 0; hop < 10; hop++) {
    const response = await fetch(current, { signal, redirect: 'manual', headers: { 'Accept-Encoding': 'identity' } });
    declared.sha256 ??= declaredSha256(response.headers.get('x-linked-etag'));
    const size = response.headers.get('x-linked-size');
    if (declared.size === undefined && size !== null && /^\d+$/.test(size)) declared.size = Number(size);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      current = new URL(location, current).toString();
      continue;
    }
    return response;
  }
  throw new Error('too many redirects');
}

async function downloadOnce(url: string, file: DownloadFile, target: string, options: DownloadOptions): Promise<number> {
  const temporary = path.join(path.dirname(target), `.${path.basename(target)}.partial-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  const idleMs = options.idleTimeoutMs ?? 30_000;
  const controller = new AbortController();
  let timer = setTimeout(() => controller.abort(), idleMs);
  const keepAlive = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), idleMs);
  };
  let handle: fs.promises.FileHandle | undefined;
  try {
    let response: Response;
    const declared: Declared = {};
    try {
      // identity: the checksum and Content-Length are of the file's bytes, not of a compressed transfer.
      response = file.declaredDigest
        ? await fetchFollowing(url, controller.signal, declared)
        : await fetch(url, { signal: controller.signal, redirect: 'follow', headers: { 'Accept-Encoding': 'identity' } });
    } catch (error) {
      throw new Error(describeFailure(error));
    }
    if (!response.ok || !response.body) throw new Error(`server answered ${response.status} ${response.statusText}`);
    const lengthHeader = response.headers.get('content-length');
    const encoded = (response.headers.get('content-encoding') ?? 'identity') !== 'identity';
    const total = !encoded && lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const hash = crypto.createHash(file.checksum.algorithm);
    handle = await fs.promises.open(temporary, 'wx');
    let received = 0;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        keepAlive();
        hash.update(chunk);
        await handle.write(chunk);
        received += chunk.length;
        options.onProgress?.(received, total, url);
      }
    } catch (error) {
      throw new Error(`the connection broke after ${received} bytes${total !== undefined ? ` of ${total}` : ''} (${describeFailure(error)})`);
    }
    if (total !== undefined && received !== total) throw new Error(`received ${received} bytes but the server announced ${total}; the download is truncated`);
    const digest = hash.digest('hex');
    if (digest !== file.checksum.hex.toLowerCase()) {
      if (file.checksum.algorithm === 'sha256' && declared.sha256 === digest && (declared.size === undefined || declared.size === received)) {
        // The host serves what it declares, and that is not what vitpeft pinned: its file changed.
        await handle.sync();
        await handle.close();
        handle = undefined;
        const aside = `${target}.sha256-${digest.slice(0, 12)}`;
        await fs.promises.rename(temporary, aside);
        throw new ChangedUpstreamError(
          aside,
          `the host's file changed since vitpeft pinned it: pinned sha256 ${file.checksum.hex}, but the host declares and serves sha256 ${digest} (${received} bytes). ` +
            `It is kept aside at ${aside} and not used; if you trust it (see the model's page), move it to ${target} yourself — vitpeft data fetch keeps refusing it until vitpeft's pin is updated`,
        );
      }
      const hub = declared.sha256 === undefined ? '' : declared.sha256 === file.checksum.hex.toLowerCase() ? '; the host declares the pinned digest' : `; the host declares sha256 ${declared.sha256}`;
      throw new Error(`${file.checksum.algorithm} is ${digest} but the published checksum is ${file.checksum.hex} (${received} bytes received${hub}); the download is corrupt or truncated`);
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.promises.rename(temporary, target);
    return received;
  } finally {
    clearTimeout(timer);
    if (handle) await handle.close().catch(() => undefined);
    await fs.promises.rm(temporary, { force: true });
  }
}

/** Downloads one file into `folder` unless a file with the right checksum is already there. */
export async function downloadFile(file: DownloadFile, folder: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const target = path.join(folder, file.name);
  if (fs.existsSync(target)) {
    const digest = await fileDigest(target, file.checksum.algorithm);
    if (digest === file.checksum.hex.toLowerCase()) return { path: target, bytes: fs.statSync(target).size, reused: true };
  }
  try {
    fs.mkdirSync(folder, { recursive: true });
  } catch (error) {
    throw new DownloadError(folder, `cannot create the folder (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const failures: string[] = [];
  for (const url of file.urls) {
    try {
      const bytes = await downloadOnce(url, file, target, options);
      return { path: target, bytes, reused: false, url };
    } catch (error) {
      if (error instanceof ChangedUpstreamError) throw new DownloadError(target, error.message);
      failures.push(`${url}: ${(error as Error).message}`);
    }
  }
  throw new DownloadError(
    target,
    `download failed (${failures.join('; ')}). To install it by hand, download ${file.urls[0]} ` +
      `and put it at ${target} (${file.checksum.algorithm} ${file.checksum.hex})`,
  );
}

/** Downloads every file of an entry into `folder` (default: its subfolder of the cache). */
export async function fetchDownload(entry: DownloadEntry, folder = path.join(defaultCacheDir(), entry.folder), options: DownloadOptions = {}): Promise<DownloadResult[]> {
  const results: DownloadResult[] = [];
  for (const file of entry.files) results.push(await downloadFile(file, folder, options));
  return results;
}
