// Timing helpers for the benchmark: warm-up runs are discarded, then each run is timed on its own,
// so a shared, noisy machine shows up as spread between the minimum and the median. Each run's
// process CPU time (all threads, user + system) is recorded too: with one thread, wall time far
// above CPU time means the run waited for a core another process held.

export interface Timing {
  /** Seconds of each timed run, in the order they ran. */
  readonly seconds: number[];
  readonly minSeconds: number;
  readonly medianSeconds: number;
  /** CPU seconds (all threads of the process) of each timed run. */
  readonly cpuSeconds: number[];
  readonly medianCpuSeconds: number;
  /** Where a case's time went, when it measures parts (seconds, shares). */
  readonly parts?: Readonly<Record<string, number>>;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Runs `run` warmup times untimed, then `runs` times timed; `run` must finish its work (read results back) before returning. */
export async function timeRuns(run: () => void | Promise<void>, warmup: number, runs: number): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await run();
  const seconds: number[] = [];
  const cpuSeconds: number[] = [];
  for (let i = 0; i < runs; i++) {
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    await run();
    seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
    const used = process.cpuUsage(cpu);
    cpuSeconds.push((used.user + used.system) / 1e6);
  }
  return { seconds, minSeconds: Math.min(...seconds), medianSeconds: median(seconds), cpuSeconds, medianCpuSeconds: median(cpuSeconds) };
}

/** The groups of cases, in the order the JSON summary lists them. */
export const CASE_GROUPS = ['train', 'eval', 'kernel', 'dataset', 'job', 'knn'] as const;
export type CaseGroup = (typeof CASE_GROUPS)[number];

export interface BenchCase {
  readonly group: CaseGroup;
  /** The key in the JSON output's group (train: the method label). */
  readonly name: string;
  readonly batch: number;
  readonly description: string;
  /** Runs this case always takes, whatever --runs/--warmup say (a whole job is timed once). */
  readonly fixedRuns?: { readonly warmup: number; readonly runs: number };
  measure(warmup: number, runs: number): Promise<Timing>;
}
