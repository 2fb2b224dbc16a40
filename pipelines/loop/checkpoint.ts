// A job's checkpoint as the loop sees it: when one is due, how it is saved and restored, and that
// it goes once the job has its result. stateFileCheckpoint keeps any session's state in one file
// with the caller's progress record; trainingStateCheckpoint is it for a TrainingSession
// (stages/trainer/trainingState.ts), pipelines/loop/dinoCheckpoint.ts for a DINO session.

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

/** A checkpoint file already opened (and checked against the job) to resume from. */
export interface OpenedState {
  readonly header: { readonly step: number };
  close(): void;
}

export interface StateFileCheckpointOptions<E, S, F extends OpenedState> {
  readonly file: string;
  /** Checkpoint every this many steps (0: only when stopping). */
  readonly every: number;
  /** The checkpoint this job resumes from. */
  readonly opened?: F;
  /** Loads the opened file into the job's new session. */
  restore(opened: F, session: S): void;
  /** Writes the session's state and the caller's record to `file`, atomically. */
  write(file: string, session: S, progress: unknown): void;
  /** The caller's record saved beside the state (read back by the caller when resuming). */
  progress(): unknown;
  event(step: number, file: string): E;
}

/** A job's checkpoint kept in one state file, whatever the session's kind. */
export function stateFileCheckpoint<E, S, F extends OpenedState>(options: StateFileCheckpointOptions<E, S, F>): JobCheckpoint<E, S> {
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
        if (pending) options.restore(pending, session);
      } finally {
        close();
      }
    },
    save: (step, session) => {
      options.write(options.file, session, options.progress());
      return options.event(step, options.file);
    },
    remove: () => fs.rmSync(options.file, { force: true }),
    close,
  };
}

export interface TrainingStateCheckpointOptions<E> extends Pick<StateFileCheckpointOptions<E, TrainingSession, TrainingStateFile>, 'file' | 'every' | 'opened' | 'progress' | 'event'> {
  /** The model names of the session's trainable variables, in order. */
  readonly names: readonly string[];
}

/** A TrainingSession's state (trainable variables, optimizer slots) in one training-state file. */
export function trainingStateCheckpoint<E>(options: TrainingStateCheckpointOptions<E>): JobCheckpoint<E> {
  return stateFileCheckpoint({
    ...options,
    restore: (opened, session) => opened.restoreInto(session, options.names),
    write: (file, session, progress) => saveTrainingState(file, session, options.names, progress),
  });
}
