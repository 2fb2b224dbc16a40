// The columns of results.csv, in order: shared by the reporter that writes it and the readers.
// A run that measures linear-probe retention has one more, after retention_unplugged.

export const RESULT_COLUMNS = [
  'run',
  'method',
  'seed',
  'trainable_params',
  'new_task_accuracy',
  'new_task_best',
  'retention_accuracy',
  'retention_unplugged',
  'frozen_head_accuracy',
  'mean_accuracy',
  'steps',
  'status',
  'note',
] as const;

/** Linear-probe retention's column, present only in the files of runs that measure it. */
export const LINEAR_PROBE_COLUMN = 'retention_linear';

/** results.csv's columns for a run with or without linear-probe retention. */
export function resultColumns(linearProbe: boolean): readonly string[] {
  if (!linearProbe) return RESULT_COLUMNS;
  const at = RESULT_COLUMNS.indexOf('retention_unplugged') + 1;
  return [...RESULT_COLUMNS.slice(0, at), LINEAR_PROBE_COLUMN, ...RESULT_COLUMNS.slice(at)];
}
