// The global options every subcommand shares, and starting the backend they choose.

import { Command } from 'commander';
import { BackendChoice, BackendInfo, THREADS_ENV, initBackend } from '../di/backend';
import { UsageError } from './errors';

export interface GlobalOptions {
  backend: BackendChoice;
  threads?: number;
  verbose: boolean;
}

/** Starts the backend the user chose and says which one runs (on stderr, keeping stdout for data). */
export async function startBackend(command: Command): Promise<BackendInfo> {
  const { backend, threads } = command.optsWithGlobals<GlobalOptions>();
  let info: BackendInfo;
  try {
    info = await initBackend(backend, { threads });
  } catch (error) {
    // A bad VITPEFT_THREADS is the user's input too.
    if ((error as Error).message.startsWith(THREADS_ENV)) throw new UsageError((error as Error).message);
    throw error;
  }
  process.stderr.write(`vitpeft: backend ${info.description}\n`);
  return info;
}
