// The injection tokens of the pipeline's stages, in one place. A stage is resolved by its token,
// so any of them can be replaced (in code, or in a test's child container) without touching the rest.

export const TOKENS = {
  dataset: Symbol.for('vitpeft.DatasetStage'),
  surgery: Symbol.for('vitpeft.SurgeryStage'),
  trainer: Symbol.for('vitpeft.TrainerStage'),
  evaluator: Symbol.for('vitpeft.EvaluatorStage'),
  reporter: Symbol.for('vitpeft.ReporterStage'),
  /** Reporter settings (a registered value): output folder, terminal, quietness. */
  reporterOptions: Symbol.for('vitpeft.ReporterOptions'),
} as const;
