// What flows out of a running pipeline: one stream of events that the reporter turns into CSV
// rows, the progress display, the table and the plots, and that code can subscribe to directly.

export interface RunStartEvent {
  readonly kind: 'run-start';
  readonly run: string;
  readonly outDir: string;
  readonly backend: string;
  readonly model: string;
  /** method name x seed, in the order they will run. */
  readonly jobs: ReadonlyArray<{ readonly method: string; readonly seed: number; readonly steps: number }>;
  /** The k of the k-NN evaluations, and the one the table reports. */
  readonly knnK: readonly number[];
  readonly knnHeadline: number;
  /** Linear-probe retention is measured too (evaluate.linearProbe): evals.csv gets its column. */
  readonly linearProbe?: boolean;
  /** Continuing an interrupted run in the same folder (vitpeft run --resume). */
  readonly resumed?: boolean;
  /** The memory plan of the pretrained model's evaluation: the batch chosen and the estimate. */
  readonly memoryPlan?: string;
}

export interface StepEvent {
  readonly kind: 'step';
  readonly method: string;
  readonly seed: number;
  readonly step: number;
  readonly steps: number;
  readonly epoch: number;
  readonly loss: number;
  readonly lr: number;
  readonly imagesPerSecond: number;
}

export interface EvalEvent {
  readonly kind: 'eval';
  /** 'pretrained' for the baseline evaluation before any fine-tuning. */
  readonly method: string;
  readonly seed: number;
  readonly step: number;
  /** Top-1 accuracy (%) of the model's head on the new task's test split. */
  readonly newTaskAccuracy?: number;
  /** Weighted k-NN accuracy (%) on the pretraining domain, by k. */
  readonly retention?: Readonly<Record<number, number>>;
  /** The same with adapters removed / added blocks bypassed (LoRA and block expansion). */
  readonly retentionUnplugged?: Readonly<Record<number, number>>;
  /** Linear-probe accuracy (%) on the retention queries: a logistic regression fitted on the bank's features. */
  readonly retentionLinear?: number;
  /** Accuracy (%) of the pretrained checkpoint's own head on the retention queries, on current features. */
  readonly frozenHeadAccuracy?: number;
  /** Measurements a custom evaluator adds, by name (not written to evals.csv; subscribers see them here). */
  readonly metrics?: Readonly<Record<string, number>>;
  readonly seconds: number;
  /** Read back from evals.csv by a resumed run (already recorded there, not measured again). */
  readonly restored?: boolean;
}

/**
 * ok and diverged are final (a resumed run keeps them); interrupted: stopped by a signal after
 * writing a checkpoint, continued by `vitpeft run --resume`.
 */
export type MethodStatus = 'ok' | 'diverged' | 'failed' | 'interrupted';

export interface MethodResult {
  readonly method: string;
  readonly seed: number;
  readonly trainableParams: number;
  readonly steps: number;
  readonly status: MethodStatus;
  readonly newTaskAccuracy?: number;
  /** Best new-task accuracy over the evaluations (the paper's choice of number). */
  readonly newTaskBest?: number;
  readonly retentionAccuracy?: number;
  readonly retentionUnplugged?: number;
  /** Linear-probe retention at the last evaluation (when measured). */
  readonly retentionLinear?: number;
  readonly frozenHeadAccuracy?: number;
  readonly meanAccuracy?: number;
  readonly seconds: number;
  readonly note?: string;
}

export interface MethodStartEvent {
  readonly kind: 'method-start';
  readonly method: string;
  readonly seed: number;
  readonly trainableParams: number;
  readonly description: string;
  readonly steps: number;
  /** The step it starts from (above 0 when resumed from a checkpoint). */
  readonly fromStep: number;
  /** Evaluations every this many steps (0: only after the last step), for the time left. */
  readonly evaluateEvery?: number;
  /** Evaluations after these steps too (0: before the first). */
  readonly evaluateAt?: readonly number[];
  /** The memory plan: the micro-batch chosen and the estimated peak of a step. */
  readonly memoryPlan?: string;
}

export interface MethodEndEvent {
  readonly kind: 'method-end';
  readonly result: MethodResult;
  /** A method that finished before the run was resumed, read back from results.csv. */
  readonly restored?: boolean;
}

export interface CheckpointEvent {
  readonly kind: 'checkpoint';
  readonly method: string;
  readonly seed: number;
  readonly step: number;
  readonly file: string;
}

export interface RunEndEvent {
  readonly kind: 'run-end';
  readonly baselineRetention?: number;
  readonly baselineFrozenHead?: number;
  readonly results: readonly MethodResult[];
  readonly interrupted: boolean;
}

export type PipelineEvent = RunStartEvent | StepEvent | EvalEvent | MethodStartEvent | MethodEndEvent | CheckpointEvent | RunEndEvent;

export const BASELINE = 'pretrained';
