// `vitpeft data fetch NAME [--dir DIR]`: downloads a dataset or the pretrained checkpoint from its
// official location, verified against the published checksum. `vitpeft data info URI`: what a
// data URI resolves to (size, classes, image shape), without reading any image.

import * as path from 'path';
import { Command } from 'commander';
import { DATA_URI_SYNTAX, DataUriError, openDataUri } from '../../stages/dataset/dataUri';
import { DOWNLOADS, DownloadName, defaultCacheDir, fetchDownload, isDownloadName } from '../../stages/dataset/downloads';
import { UsageError } from '../errors';

function progressPrinter(name: string): (received: number, total: number | undefined) => void {
  let lastTenth = -1;
  let lastMegabytes = 0;
  return (received, total) => {
    if (total) {
      const tenth = Math.floor((received / total) * 10);
      if (tenth === lastTenth) return;
      lastTenth = tenth;
      process.stderr.write(`vitpeft: ${name}: ${(received / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB\n`);
    } else if (received - lastMegabytes >= 50e6) {
      lastMegabytes = received;
      process.stderr.write(`vitpeft: ${name}: ${(received / 1e6).toFixed(1)} MB\n`);
    }
  };
}

export async function fetchCommandAction(names: string[], options: { dir?: string }): Promise<void> {
  const unknown = names.filter((name) => !isDownloadName(name));
  if (unknown.length > 0) throw new UsageError(`data fetch: unknown name '${unknown[0]}' (expected ${Object.keys(DOWNLOADS).join(', ')})`);
  if (options.dir && names.length > 1) throw new UsageError('data fetch: --dir takes one name at a time (each download has its own folder)');
  for (const name of names as DownloadName[]) {
    const entry = DOWNLOADS[name];
    const folder = options.dir ? path.resolve(options.dir) : path.join(defaultCacheDir(), entry.folder);
    process.stderr.write(`vitpeft: ${name}: ${entry.description} -> ${folder}\n`);
    const results = await fetchDownload(entry, folder, { onProgress: progressPrinter(name) });
    for (const result of results) {
      process.stderr.write(`vitpeft: ${result.reused ? 'already there, checksum verified' : `downloaded ${result.bytes} bytes, checksum verified`}: ${result.path}\n`);
    }
    process.stdout.write(`${name}: ${entry.usage(folder)}\n`);
  }
}

export async function infoCommandAction(uri: string): Promise<void> {
  let source;
  try {
    source = await openDataUri(uri);
  } catch (error) {
    if (error instanceof DataUriError) throw new UsageError(error.message);
    throw error;
  }
  const lines = [
    `source:   ${source.description}`,
    `images:   ${source.size}`,
    `classes:  ${source.numClasses}${source.classNames ? ` (${source.classNames.slice(0, 10).join(', ')}${source.classNames.length > 10 ? ', ...' : ''})` : ''}`,
    `shape:    ${source.imageShape ? source.imageShape.join('x') : 'varies (decoded per image)'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function dataCommand(): Command {
  const command = new Command('data').description('download datasets and the pretrained checkpoint; describe data URIs');
  command
    .command('fetch')
    .description(
      `download ${Object.keys(DOWNLOADS).join(', ')} from the official location, verify the published checksum, then move into place ` +
        `(default folder: ${path.join('$VITPEFT_CACHE or ~/.cache/vitpeft', '<name>')})`,
    )
    .argument('<names...>', Object.keys(DOWNLOADS).join(' | '))
    .option('--dir <folder>', 'put the files in this folder instead of the cache')
    .action(fetchCommandAction)
    .exitOverride();
  command
    .command('info')
    .description(`describe what a data URI resolves to (${DATA_URI_SYNTAX}; options ?classes=0-4&remap=false&perClass=N)`)
    .argument('<uri>', 'a data URI, e.g. cifar100:DIR:test')
    .action(infoCommandAction)
    .exitOverride();
  return command;
}
