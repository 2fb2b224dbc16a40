// A DINO pretraining's checkpoint as the job loop sees it: the session's state (student, teacher,
// centre, both optimizers) in one DINO state file (stages/trainer/dino/state.ts) with the
// caller's progress record.

import * as fs from 'fs';
import { DinoSession } from '../../stages/trainer/dino/session';
import { DinoStateFile, saveDinoState } from '../../stages/trainer/dino/state';
import type { JobCheckpoint } from './checkpoint';

export interface DinoCheckpointOptions<E> {
  readonly file: string;
  /** Checkpoint every this many steps (0: only when stopping). */
  readonly every: number;
  /** The state this pretraining resumes from, already opened and checked against it. */
  readonly opened?: DinoStateFile;
  progress(): unknown;
  event(step: number, file: string): E;
}

export function dinoCheckpoint<E>(options: DinoCheckpointOptions<E>): JobCheckpoint<E, DinoSession> {
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
        pending?.restoreInto(session);
      } finally {
        close();
      }
    },
    save: (step, session) => {
      saveDinoState(options.file, session, options.progress());
      return options.event(step, options.file);
    },
    remove: () => fs.rmSync(options.file, { force: true }),
    close,
  };
}
