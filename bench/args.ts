// Command-line flags of the bench's tools (bench/profile.ts, bench/dinoStep.ts): `--flag value`
// pairs, and the backend they run on.

import { BackendInfo, initBackend } from '../di/backend';

/** The value after `flag`, or undefined. */
export function flagValue(args: readonly string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at === -1 ? undefined : args[at + 1];
}

/** The default backend, with `--threads N` threads when given. */
export function backendFromArgs(args: readonly string[]): Promise<BackendInfo> {
  const threads = flagValue(args, '--threads');
  return initBackend('auto', { threads: threads ? Number(threads) : undefined });
}
