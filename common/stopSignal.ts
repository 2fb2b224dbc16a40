// How a running job is asked to stop: read at every step boundary, set by a signal handler
// (the CLI's SIGINT/SIGTERM) or by code.

/** A stop request, set by a signal handler (the CLI's SIGINT/SIGTERM) or by code. */
export interface StopSignal {
  readonly requested: boolean;
}
