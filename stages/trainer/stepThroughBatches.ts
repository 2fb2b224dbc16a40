// The contract every trainer keeps, written once: one session; the caller's onStart (a checkpoint
// restored) before the first step; one step per batch until the session has completed `steps`
// (restored ones counted); each batch disposed, and so acknowledged to the bounded producer, as
// soon as its step is done; the afterStep hook's work run before the next step; a batch that
// arrived but never got its step (training ended by an error or a stop) disposed when the stream
// ends; the session released however it ends.

import { EMPTY, Observable, concat, concatMap, defer, finalize, of, take, tap } from 'rxjs';
import type { Batch } from '../dataset/batches';

export interface SessionHooks<S, R, T> {
  onStart?(session: S): void;
  afterStep?(step: R, session: S): Observable<T>;
}

export interface SteppingSession {
  readonly completedSteps: number;
  dispose(): void;
}

/** Runs `step` on each batch with one session from `create`; emits each step's result, then the hook's values. */
export function stepThroughBatches<S extends SteppingSession, R, T>(
  create: () => S,
  steps: number,
  batches: Observable<Batch>,
  hooks: SessionHooks<S, R, T>,
  step: (session: S, batch: Batch) => R,
): Observable<R | T> {
  return defer(() => {
    const session = create();
    try {
      hooks.onStart?.(session);
    } catch (error) {
      session.dispose();
      throw error;
    }
    const remaining = steps - session.completedSteps;
    if (remaining <= 0) {
      session.dispose();
      return EMPTY;
    }
    // Batches received but not yet stepped on (concatMap buffers them while a follow-up runs).
    const waiting = new Set<Batch>();
    return batches.pipe(
      take(remaining),
      tap((batch) => waiting.add(batch)),
      concatMap((batch) => {
        waiting.delete(batch);
        let result: R;
        try {
          result = step(session, batch);
        } finally {
          batch.dispose();
        }
        return concat(of(result), hooks.afterStep ? defer(() => hooks.afterStep!(result, session)) : EMPTY);
      }),
      finalize(() => {
        for (const batch of waiting) batch.dispose();
        waiting.clear();
        session.dispose();
      }),
    );
  });
}
