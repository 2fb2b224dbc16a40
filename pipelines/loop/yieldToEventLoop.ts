// In-memory data keeps a run on microtasks, where signal handlers never get their turn: one
// macrotask yield per step lets a SIGINT set the stop flag before the loop reads it.

import { Observable } from 'rxjs';

/** Completes without a value after one turn of the event loop (timers, I/O and signal handlers run). */
export function yieldToEventLoop(): Observable<never> {
  return new Observable<never>((subscriber) => {
    const handle = setImmediate(() => subscriber.complete());
    return () => clearImmediate(handle);
  });
}
