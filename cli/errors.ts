// How the command line reports failure: one line naming what was wrong, no stack trace unless
// --verbose, and a non-zero exit code.

/** An error whose message is complete for a user (the command line prints it alone). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The run stopped on a signal after saving what it had; the message says how to continue. */
export class InterruptedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InterruptedError';
  }
}

export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

export function reportError(error: unknown, verbose: boolean): number {
  const message = error instanceof Error ? error.message : String(error);
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  else process.stderr.write(error instanceof InterruptedError ? `vitpeft: ${message}\n` : `vitpeft: error: ${message}\n`);
  if (error instanceof InterruptedError) return EXIT.interrupted;
  return error instanceof UsageError ? EXIT.usage : EXIT.failure;
}
