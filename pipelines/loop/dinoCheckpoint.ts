// A DINO pretraining's checkpoint as the job loop sees it: the session's state (student, teacher,
// centre, both optimizers) in one DINO state file (stages/trainer/dino/state.ts) with the
// caller's progress record.

import { DinoSession } from '../../stages/trainer/dino/session';
import { DinoStateFile, saveDinoState } from '../../stages/trainer/dino/state';
import { JobCheckpoint, StateFileCheckpointOptions, stateFileCheckpoint } from './checkpoint';

export type DinoCheckpointOptions<E> = Pick<StateFileCheckpointOptions<E, DinoSession, DinoStateFile>, 'file' | 'every' | 'opened' | 'progress' | 'event'>;

export function dinoCheckpoint<E>(options: DinoCheckpointOptions<E>): JobCheckpoint<E, DinoSession> {
  return stateFileCheckpoint({
    ...options,
    restore: (opened, session) => opened.restoreInto(session),
    write: (file, session, progress) => saveDinoState(file, session, progress),
  });
}
