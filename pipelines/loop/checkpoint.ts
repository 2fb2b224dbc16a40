// A job's checkpoint as the loop sees it: when one is due, how it is saved and restored, and that
// it goes once the job has its result. trainingStateCheckpoint keeps a TrainingSession's state in
// one training-state file (stages/trainer/trainingState.ts) with the caller's progress record.

import * as fs from 'fs';
import { TrainingSession } from '../../stages/trainer/session';
import { TrainingStateFile, saveTrainingState } from '../../stages/trainer/trainingState';

export interface JobCheckpoint<E, S = TrainingSession> {
  /** Steps already completed when the job starts (0 unless it resumes). */
  readonly fromStep: number;
  /** Whether a checkpoint is due after `step` (the last step never needs one). */
  due(step: number): boolean;
  /** Loads the saved state into the job's new session; called once, before the first step. */
  restore(session: S): void;
  /** Writes the state after `step` completed steps; returns the event that records it. */
  save(step: number, session: S): E;
  /** The job has its result: the checkpoint is no longer needed. */
  remove(): void;
  /** Releases the opened file, if restore never ran. */
  close(): void;
}

export interface TrainingStateCheckpointOptions<E> {
  readonly file: string;
  /** Checkpoint every this many steps (0: only when stopping). */
  readonly every: number;
  /** The checkpoint this job resumes from, already opened and checked against the job. */
  readonly opened?: TrainingStateFile;
  /** The model names of the session's trainable variables, in order. */
  readonly names: readonly string[];
  /** The caller's record saved beside the state (read back by the caller when resuming). */
  progress(): unknown;
  event(step: number, file: string): E;
}

export function trainingStateCheckpoint<E>(options: TrainingStateCheckpointOptions<E>): JobCheckpoint<E> {
  let pending = options.opened;
  const close = () => {
    pending?.close();
    pending = undefined;
  };
  return {
    fromStep: options.opened?.header.step ?? 0,
    due: (step) => options.every > 0 && step % options.every === 0,
    restore: (session) => {
      try {
        pending?.restoreInto(session, options.names);
      } finally {
        close();
      }
    },
    save: (step, session) => {
      saveTrainingState(options.file, session, options.names, options.progress());
      return options.event(step, options.file);
    },
    remove: () => fs.rmSync(options.file, { force: true }),
    close,
  };
}
