// Reads chosen members out of a .tar.gz (or plain .tar) archive in one streaming pass, without
// extracting anything to disk: gunzip, then 512-byte tar blocks (ustar headers, GNU long names and
// pax path records understood). Only the members asked for are kept in memory, and only as many
// bytes as actually arrive: a header's size field is never trusted to size an allocation.

import * as fs from 'fs';
import * as zlib from 'zlib';
import { Readable } from 'stream';
import { LocatedError } from './errors';

const BLOCK = 512;

export class TarError extends LocatedError {}

export interface TarReadOptions {
  /** Stop reading once this many members have been selected (saves decompressing the rest). */
  stopAfter?: number;
}

function field(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString('utf8');
}

function numericField(header: Buffer, start: number, length: number): number {
  if (header[start] & 0x80) {
    // GNU base-256: big-endian two's complement in the remaining bytes.
    let value = 0;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + header[i];
    return value;
  }
  const text = field(header, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return NaN;
  return parseInt(text, 8);
}

function checksumMatches(header: Buffer): boolean {
  const stored = numericField(header, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  return stored === sum;
}

function paxPath(records: Buffer): string | undefined {
  // Records are "<length> <key>=<value>\n", length counting the whole record in bytes.
  let offset = 0;
  let path: string | undefined;
  while (offset < records.length) {
    const space = records.indexOf(0x20, offset);
    if (space === -1) break;
    const length = parseInt(records.subarray(offset, space).toString('ascii'), 10);
    if (!(length > 0)) break;
    const record = records.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0 && record.slice(0, equals) === 'path') path = record.slice(equals + 1);
    offset += length;
  }
  return path;
}

function isGzip(path: string): boolean {
  const fd = fs.openSync(path, 'r');
  try {
    const magic = Buffer.alloc(2);
    return fs.readSync(fd, magic, 0, 2, 0) === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The members whose full path `select` accepts, as name -> bytes. Fails with a TarError naming the
 * archive when it is missing, not gzip/tar, or ends inside a header or a member.
 */
export async function readTarMembers(archive: string, select: (name: string) => boolean, options: TarReadOptions = {}): Promise<Map<string, Buffer>> {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(archive);
  } catch {
    throw new TarError(archive, 'no such file');
  }
  if (!stat.isFile()) throw new TarError(archive, 'is not a file');
  const compressed = isGzip(archive);
  const file = fs.createReadStream(archive);
  const stream: Readable = compressed ? file.pipe(zlib.createGunzip()) : file;
  if (compressed) file.on('error', (error) => stream.destroy(error));

  const found = new Map<string, Buffer>();
  const header = Buffer.alloc(BLOCK);
  let headerFill = 0;
  let longName: string | undefined; // from a GNU 'L' or pax 'x' entry, for the next member
  // The member being read: its data is kept (target) or skipped.
  let remaining = 0;
  let padding = 0;
  // The kept member's bytes as they arrive (joined when it ends), not a buffer of the claimed size.
  let target: Buffer[] | undefined;
  let currentName = '';
  let currentKind: 'file' | 'longname' | 'pax' | 'other' = 'other';
  let ended = false;
  let stopped = false;

  const finishMember = (): void => {
    const data = target && Buffer.concat(target);
    if (currentKind === 'longname' && data) longName = field(data, 0, data.length);
    else if (currentKind === 'pax' && data) longName = paxPath(data) ?? longName;
    else if (currentKind === 'file' && data) found.set(currentName, data);
    target = undefined;
  };

  const startMember = (): void => {
    if (header.every((byte) => byte === 0)) {
      ended = true;
      return;
    }
    if (!checksumMatches(header)) {
      throw new TarError(archive, `bad tar header checksum${found.size === 0 && !compressed ? ' (not a tar archive?)' : ''}`);
    }
    const size = numericField(header, 124, 12);
    if (!Number.isSafeInteger(size)) throw new TarError(archive, 'tar header has an unreadable size field');
    const type = String.fromCharCode(header[156] || 0x30);
    const magic = field(header, 257, 6);
    const prefix = magic.startsWith('ustar') ? field(header, 345, 155) : '';
    let name = field(header, 0, 100);
    if (prefix) name = `${prefix}/${name}`;
    if (longName !== undefined && type !== 'L' && type !== 'x') {
      name = longName;
      longName = undefined;
    }
    currentName = name;
    remaining = size;
    padding = (BLOCK - (size % BLOCK)) % BLOCK;
    currentKind = type === 'L' ? 'longname' : type === 'x' ? 'pax' : type === '0' || type === '7' ? 'file' : 'other';
    const keep = currentKind === 'longname' || currentKind === 'pax' || (currentKind === 'file' && select(name));
    target = keep ? [] : undefined;
    if (size === 0) finishMember();
  };

  const consume = (chunk: Buffer): void => {
    let offset = 0;
    while (offset < chunk.length && !ended && !stopped) {
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.length - offset);
        if (target) target.push(Buffer.from(chunk.subarray(offset, offset + take)));
        remaining -= take;
        offset += take;
        if (remaining === 0) {
          finishMember();
          if (options.stopAfter !== undefined && found.size >= options.stopAfter) stopped = true;
        }
      } else if (padding > 0) {
        const take = Math.min(padding, chunk.length - offset);
        padding -= take;
        offset += take;
      } else {
        const take = Math.min(BLOCK - headerFill, chunk.length - offset);
        chunk.copy(header, headerFill, offset, offset + take);
        headerFill += take;
        offset += take;
        if (headerFill === BLOCK) {
          headerFill = 0;
          startMember();
        }
      }
    }
  };

  try {
    for await (const chunk of stream) {
      consume(chunk as Buffer);
      if (ended || stopped) break;
    }
  } catch (error) {
    if (error instanceof TarError) throw error;
    const message = (error as Error).message;
    throw new TarError(archive, compressed ? `cannot decompress (${message}); the download may be truncated or corrupt` : `cannot read (${message})`);
  } finally {
    file.destroy();
    stream.destroy();
  }
  if (!ended && !stopped) {
    if (remaining > 0) throw new TarError(archive, `archive ends inside member '${currentName}' (${remaining} bytes missing); it is truncated`);
    if (headerFill > 0) throw new TarError(archive, 'archive ends inside a tar header; it is truncated');
  }
  return found;
}
