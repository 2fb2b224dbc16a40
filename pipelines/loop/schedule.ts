// When a job's scheduled follow-ups run: every N steps, after the steps listed, and always after
// the last step.

/** A predicate on the completed step: every `every` steps (0: never), at the `at` steps, and at the last step. */
export function evaluationSchedule(every: number, steps: number, at: readonly number[] = []): (step: number) => boolean {
  const listed = new Set(at);
  return (step) => step === steps || (every > 0 && step % every === 0) || listed.has(step);
}
