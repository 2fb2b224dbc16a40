// SIGINT and SIGTERM during a long job: the first asks the job to stop after its current step
// (it writes a checkpoint and its results so far); a second exits at once, keeping the last
// checkpoint and every row written.

import type { StopSignal } from '../common/stopSignal';
import { EXIT } from './errors';

/** Runs `work` with a stop signal set by SIGINT/SIGTERM; `resumeCommand` is how to continue. */
export async function withStopSignal<T>(resumeCommand: string, work: (stop: StopSignal) => Promise<T>): Promise<T> {
  const stop = { requested: false };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.requested) {
      process.stderr.write(`\nvitpeft: ${signal} again: exiting now; the last checkpoint and every row written so far are kept (${resumeCommand})\n`);
      process.exit(EXIT.interrupted);
    }
    stop.requested = true;
    process.stderr.write(`\nvitpeft: ${signal}: stopping after the current step to write a checkpoint and the results so far; a second signal exits at once\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(stop);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
