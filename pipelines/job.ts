// The vocabulary of a run's jobs, shared by the runner, the jobs and resume: the stages a run
// uses, what a run is asked to do (RunOptions) and the method x seed jobs it plans (planJobs).

import type { StopSignal } from '../common/stopSignal';
import type { DatasetStage } from '../stages/dataset/stage';
import type { EvaluatorStage } from '../stages/evaluator/stage';
import type { ReporterStage } from '../stages/reporter/stage';
import type { SurgeryStage } from '../stages/surgery/stage';
import type { TrainerStage } from '../stages/trainer/stage';
import type { TrainSettings } from '../stages/trainer/session';
import { MethodEntry, PipelineSpec, defaultCheckpointEvery, methodName, resolveTrain } from './spec';

/** The stages a run composes (pipelines/composer resolves them through DI). */
export interface Stages {
  readonly dataset: DatasetStage;
  readonly surgery: SurgeryStage;
  readonly trainer: TrainerStage;
  readonly evaluator: EvaluatorStage;
  readonly reporter: ReporterStage;
}

export interface RunOptions {
  /** The run's folder (out/<name>). */
  readonly outDir: string;
  /** Which backend runs, for the record. */
  readonly backend?: string;
  /** Run only these methods (by name). */
  readonly only?: readonly string[];
  /** Run every count-th job starting at index (1-based): shard i/n. */
  readonly shard?: { readonly index: number; readonly count: number };
  /** Seeds per method (overrides the file's `seeds`). */
  readonly seeds?: number;
  /** Save trained adapters (LoRA) or full checkpoints (other methods) into the run folder (default true). */
  readonly saveModels?: boolean;
  /**
   * Continue the run in outDir (its run.json must describe the same pipeline and options):
   * finished jobs are restored from results.csv, an interrupted one continues from its checkpoint.
   */
  readonly resume?: boolean;
  /** Read after every step and before every job: once requested, the run checkpoints and ends early. */
  readonly stop?: StopSignal;
}

export interface Job {
  readonly entry: MethodEntry;
  readonly method: string;
  readonly seed: number;
  readonly settings: TrainSettings & { readonly checkpointEvery: number };
  /** train.microBatch; kept out of settings (and so out of a checkpoint's fingerprint): it changes memory, not the result beyond rounding. */
  readonly microBatch?: number | 'auto';
}

/** The method x seed jobs a run will do, after --only and --shard. */
export function planJobs(spec: PipelineSpec, options: Pick<RunOptions, 'only' | 'shard' | 'seeds'>): Job[] {
  const names = spec.methods.map(methodName);
  for (const wanted of options.only ?? []) {
    if (!names.includes(wanted)) throw new Error(`--only: no method named '${wanted}' in the pipeline (methods: ${names.join(', ')})`);
  }
  const seeds = options.seeds ?? spec.seeds ?? 1;
  const jobs: Job[] = [];
  spec.methods.forEach((entry, index) => {
    if (options.only && !options.only.includes(names[index])) return;
    const { microBatch, ...resolved } = resolveTrain(spec.train, entry.train);
    const train = { ...resolved, checkpointEvery: entry.train?.checkpointEvery ?? spec.train.checkpointEvery ?? defaultCheckpointEvery(spec, resolved.steps) };
    for (let s = 0; s < seeds; s++) {
      const seed = train.seed + s;
      jobs.push({ entry, method: names[index], seed, settings: { ...train, seed }, microBatch });
    }
  });
  if (!options.shard) return jobs;
  const { index, count } = options.shard;
  return jobs.filter((_, i) => i % count === index - 1);
}
