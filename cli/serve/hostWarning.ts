// The warning printed when the live view listens beyond this machine.

import { isLoopback } from './liveServer';

export function warnIfExposed(host: string, root: string, write: (text: string) => void = (text) => process.stderr.write(text)): void {
  if (!isLoopback(host)) {
    write(`vitpeft: warning: serving on ${host}: anyone who can reach this address can read the run folders under ${root} (read-only, no authentication)\n`);
  }
}
