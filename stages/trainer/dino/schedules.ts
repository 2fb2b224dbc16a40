// DINO's per-step schedules (main_dino.py's cosine_scheduler and the teacher-temperature
// warm-up), indexed by the number of steps completed before the step they apply to.

/** A half cosine from start (step 0) towards end (reached at step `steps`). */
export function cosineSchedule(start: number, end: number, step: number, steps: number): number {
  return end + 0.5 * (start - end) * (1 + Math.cos((Math.PI * Math.min(step, steps)) / Math.max(1, steps)));
}

/** The teacher's EMA momentum: a cosine from its start value to 1 over all steps. */
export function teacherMomentum(start: number, step: number, steps: number): number {
  return cosineSchedule(start, 1, step, steps);
}

/** The teacher temperature: linear from start to end over warmupSteps, then end. */
export function teacherTemperature(schedule: { readonly start: number; readonly end: number; readonly warmupSteps: number }, step: number): number {
  if (step >= schedule.warmupSteps) return schedule.end;
  return schedule.start + ((schedule.end - schedule.start) * step) / schedule.warmupSteps;
}
