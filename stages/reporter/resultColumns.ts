// The columns of results.csv, in order: shared by the reporter that writes it and the readers.

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
