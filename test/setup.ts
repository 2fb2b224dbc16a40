// Mocha root hooks: every test file runs on one backend, started once (wasm unless
// VITPEFT_TEST_BACKEND names another), the same default a user gets without native TensorFlow.

import 'reflect-metadata';
import { BackendChoice, initBackend, isBackendChoice } from '../di/backend';

const requested = process.env.VITPEFT_TEST_BACKEND ?? 'wasm';
if (!isBackendChoice(requested)) throw new Error(`VITPEFT_TEST_BACKEND='${requested}' is not one of auto, tensorflow, wasm, cpu`);

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    await initBackend(requested as BackendChoice);
  },
};
