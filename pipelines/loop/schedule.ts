// When a job's scheduled follow-ups run: every N steps and always after the last step.

/** A predicate on the completed step: true every `every` steps (0: never) and at the last step. */
export function evaluationSchedule(every: number, steps: number): (step: number) => boolean {
  return (step) => step === steps || (every > 0 && step % every === 0);
}
