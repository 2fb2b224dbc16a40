// `vitpeft serve DIR`: the live view of runs started elsewhere. DIR is a run folder (its page
// opens first; the other runs beside it are listed) or an output root holding run folders.
// A run still going is followed through its CSV files as they grow.

import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { isRunFolder } from '../../stages/reporter/report/runHistory';
import { UsageError } from '../errors';
import { parseInteger } from '../options';
import { warnIfExposed } from '../serve/hostWarning';
import { DEFAULT_PORT, startLiveServer } from '../serve/liveServer';
import { serveUntilSignal } from '../serve/untilSignal';

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve the live view of a run folder (out/<run>) or of every run under an output root, read-only')
    .argument('<dir>', 'a run folder (out/<run>) or an output root (out/)')
    .option('--port <n>', `port to listen on (0: any free port)`, parseInteger('--port', 0, 65535), DEFAULT_PORT)
    .option('--host <address>', 'address to listen on (default 127.0.0.1, this machine only)', '127.0.0.1')
    .action(async (dir: string, options: { port: number; host: string }) => {
      const folder = path.resolve(dir);
      if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) throw new UsageError(`${dir}: no such folder (expected a run folder such as out/<run>, or out/)`);
      const single = isRunFolder(folder);
      const root = single ? path.dirname(folder) : folder;
      if (!single && !fs.readdirSync(folder, { withFileTypes: true }).some((entry) => entry.isDirectory() && isRunFolder(path.join(folder, entry.name)))) {
        throw new UsageError(`${dir}: not a run folder and holds none (expected results.csv, metrics.csv or run.json in it or in its subfolders)`);
      }
      warnIfExposed(options.host, root);
      const server = await startLiveServer({ root, host: options.host, port: options.port });
      process.stderr.write(`vitpeft: live view at ${single ? server.runUrl(path.basename(folder)) : `${server.url}/`} (Ctrl-C stops it)\n`);
      await serveUntilSignal(server);
    });
}
