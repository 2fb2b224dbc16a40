// Mocha root hooks: every test file runs on one backend, started once (wasm unless
// VITPEFT_TEST_BACKEND names another), the same default a user gets without native TensorFlow.
// The in-process suite computes on one thread unless VITPEFT_THREADS asks for more: its tensors
// are tiny, so handing work to a second thread costs more than it saves, and on a busy shared
// machine the thread pool's waits made the suite 2-3x slower. Numerics do not depend on the thread
// count; the command-line tests start their own processes with the default (one thread per core).
// Those runs stay in one process (VITPEFT_WORKERS=1) unless a test asks for workers: the tests
// of resume, kill -9 and the live view are about one process, and a toy run's jobs are shorter
// than a worker's start-up; test/cli/workers.test.ts runs the workers.

import 'reflect-metadata';
import { BackendChoice, THREADS_ENV, initBackend, isBackendChoice } from '../di/backend';
import { WORKERS_ENV } from '../cli/workers';

if (process.env[WORKERS_ENV] === undefined) process.env[WORKERS_ENV] = '1';

const requested = process.env.VITPEFT_TEST_BACKEND ?? 'wasm';
if (!isBackendChoice(requested)) throw new Error(`VITPEFT_TEST_BACKEND='${requested}' is not one of auto, tensorflow, wasm, cpu`);

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    await initBackend(requested as BackendChoice, { threads: process.env[THREADS_ENV] ? undefined : 1 });
  },
};
