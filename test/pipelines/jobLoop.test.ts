// The job loop on a fake job (no model, no tensors): the order of a job's events, follow-ups and
// checkpoints on their schedules, a stop request, divergence, resume, and the release of the
// job's resources however it ends.

import { expect } from 'chai';
import { Observable, concat, concatMap, defer, lastValueFrom, of, range, take, toArray } from 'rxjs';
import { LoopHooks, LoopJob, runJobLoop } from '../../pipelines/loop/jobLoop';
import { JobCheckpoint } from '../../pipelines/loop/checkpoint';
import { evaluationSchedule } from '../../pipelines/loop/schedule';
import { DivergedError } from '../../stages/trainer/session';
import type { TrainedStep } from '../../stages/trainer/stage';

interface FakeSession {
  completed: number;
}

interface Options {
  steps?: number;
  fromStep?: number;
  checkpointEvery?: number;
  evaluateEvery?: number;
  stopAfter?: number;
  divergeAt?: number;
  skipOnStart?: boolean;
}

/** A job whose events are strings, so the whole sequence reads as one list. */
function fakeJob(options: Options, log: string[]): LoopJob<string, FakeSession> {
  const steps = options.steps ?? 6;
  const fromStep = options.fromStep ?? 0;
  let reads = 0;
  const checkpoint: JobCheckpoint<string, FakeSession> = {
    fromStep,
    due: (step) => (options.checkpointEvery ?? 0) > 0 && step % options.checkpointEvery! === 0,
    restore: (session) => {
      session.completed = fromStep;
      log.push('restore');
    },
    save: (step, session) => `checkpoint ${step} (session at ${session.completed})`,
    remove: () => log.push('remove checkpoint'),
    close: () => log.push('close checkpoint'),
  };
  const train = (hooks: LoopHooks<string, FakeSession>): Observable<TrainedStep | string> =>
    defer(() => {
      const session = { completed: 0 };
      if (!options.skipOnStart) hooks.onStart(session);
      return range(session.completed + 1, steps - session.completed).pipe(
        concatMap((step) => {
          if (step === options.divergeAt) throw new DivergedError(step, 0.1, NaN);
          session.completed = step;
          const trained: TrainedStep = { kind: 'trained-step', step, loss: 1 / step, lr: 0.1, imagesPerSecond: 1, epoch: 0 };
          return concat(of(trained), defer(() => hooks.afterStep(trained, session)));
        }),
      );
    });
  return {
    steps,
    opening: of('start'),
    train,
    stepEvent: (step) => `step ${step.step}`,
    followUps: [{ due: evaluationSchedule(options.evaluateEvery ?? 0, steps), run: (step) => of(`eval ${step.step}`) }],
    checkpoint,
    stop: {
      get requested() {
        reads++;
        return options.stopAfter !== undefined && reads >= options.stopAfter;
      },
    },
    finish: () => of('finish'),
    interrupted: (step) => `interrupted ${step}`,
    diverged: (error) => `diverged ${error.step}`,
    dispose: () => log.push('dispose'),
  };
}

async function events(options: Options): Promise<{ events: string[]; log: string[] }> {
  const log: string[] = [];
  const emitted = await lastValueFrom(runJobLoop(() => fakeJob(options, log)).pipe(toArray()));
  return { events: emitted, log };
}

describe('the job loop', () => {
  it('emits start, each step with its follow-ups and due checkpoints, then finish; the checkpoint goes at the end', async () => {
    const { events: emitted, log } = await events({ steps: 6, evaluateEvery: 3, checkpointEvery: 2 });
    expect(emitted).to.deep.equal([
      'start',
      'step 1',
      'step 2',
      'checkpoint 2 (session at 2)',
      'step 3',
      'eval 3',
      'step 4',
      'checkpoint 4 (session at 4)',
      'step 5',
      'step 6',
      'eval 6', // the last step is always evaluated and never checkpointed
      'finish',
    ]);
    expect(log).to.deep.equal(['restore', 'remove checkpoint', 'close checkpoint', 'dispose']);
  });

  it('a checkpoint at an evaluation step comes after the evaluation, so it carries it', async () => {
    const { events: emitted } = await events({ steps: 4, evaluateEvery: 2, checkpointEvery: 2 });
    expect(emitted.slice(1, 5)).to.deep.equal(['step 1', 'step 2', 'eval 2', 'checkpoint 2 (session at 2)']);
  });

  it('a stop request ends the job at the next step boundary with a checkpoint (even between intervals) and an interrupted result; the checkpoint stays', async () => {
    const { events: emitted, log } = await events({ steps: 6, checkpointEvery: 4, stopAfter: 3 });
    expect(emitted).to.deep.equal(['start', 'step 1', 'step 2', 'step 3', 'checkpoint 3 (session at 3)', 'interrupted 3']);
    expect(log).to.deep.equal(['restore', 'close checkpoint', 'dispose']);
  });

  it('a stop request at the last step is too late to interrupt: the job finishes', async () => {
    const { events: emitted } = await events({ steps: 3, stopAfter: 3 });
    expect(emitted.slice(-3)).to.deep.equal(['step 3', 'eval 3', 'finish']);
  });

  it('a non-finite loss ends the job diverged, removing its checkpoint; resources are still released', async () => {
    const { events: emitted, log } = await events({ steps: 6, checkpointEvery: 2, divergeAt: 4 });
    expect(emitted).to.deep.equal(['start', 'step 1', 'step 2', 'checkpoint 2 (session at 2)', 'step 3', 'diverged 4']);
    expect(log).to.deep.equal(['restore', 'remove checkpoint', 'close checkpoint', 'dispose']);
  });

  it('a resumed job continues after its checkpoint step', async () => {
    const { events: emitted } = await events({ steps: 5, fromStep: 3, evaluateEvery: 2 });
    expect(emitted).to.deep.equal(['start', 'step 4', 'eval 4', 'step 5', 'eval 5', 'finish']);
  });

  it('refuses a trainer that steps before restoring a resumed job, and still releases the job', async () => {
    const log: string[] = [];
    let error: unknown;
    await lastValueFrom(runJobLoop(() => fakeJob({ steps: 5, fromStep: 3, skipOnStart: true }, log)), { defaultValue: undefined }).catch((e) => (error = e));
    expect(String(error)).to.match(/trained step 1 but the job resumes after step 3; a trainer must call onStart/);
    expect(log).to.deep.equal(['close checkpoint', 'dispose']);
  });

  it('releases the job when the consumer unsubscribes mid-run', async () => {
    const log: string[] = [];
    const firstTwo = await lastValueFrom(runJobLoop(() => fakeJob({ steps: 6 }, log)).pipe(take(2), toArray()));
    expect(firstTwo).to.deep.equal(['start', 'step 1']);
    expect(log).to.deep.equal(['restore', 'close checkpoint', 'dispose']);
  });
});
