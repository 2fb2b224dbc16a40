// Choosing and starting the compute backend. 'auto' prefers TensorFlow's native library
// (tfjs-node-gpu, then tfjs-node; optional dependencies that exist only where their binary
// download worked) and falls back to WebAssembly, which installs from npm alone.

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerExplicitTransposeMatMulGradient } from '../models/ops/explicitTransposeMatMul';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  /** The tfjs backend name in use: tensorflow, wasm or cpu. */
  readonly name: string;
  /** Human-readable: which package, threads, why a fallback happened. */
  readonly description: string;
}

export function isBackendChoice(value: string): value is BackendChoice {
  return (BACKEND_CHOICES as readonly string[]).includes(value);
}

function loadNative(): { package: string } | { error: string } {
  const errors: string[] = [];
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require(name);
      return { package: name };
    } catch (error) {
      errors.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return { error: errors.join('; ') };
}

let current: BackendInfo | undefined;

/** Starts the chosen backend once per process; later calls return what is running. */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (current) {
    if (choice === 'auto' || choice === current.name || (choice === 'tensorflow' && current.name === 'tensorflow')) return current;
    throw new Error(`backend '${current.name}' is already running in this process; cannot switch to '${choice}'`);
  }
  let fallbackReason = '';
  if (choice === 'auto' || choice === 'tensorflow') {
    const native = loadNative();
    if ('package' in native && (await tf.setBackend('tensorflow'))) {
      current = { name: 'tensorflow', description: `tensorflow (${native.package})` };
      return current;
    }
    const reason = 'error' in native ? native.error : 'the tensorflow backend failed to start';
    if (choice === 'tensorflow') throw new Error(`backend 'tensorflow' is not available: ${reason}`);
    fallbackReason = ' (no native TensorFlow: install @tensorflow/tfjs-node or -gpu for it)';
  }
  if (choice === 'cpu') {
    await tf.setBackend('cpu');
    current = { name: 'cpu', description: 'cpu (pure JavaScript, slow)' };
    return current;
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to start');
  await tf.ready();
  // Flagged matMul is slow on wasm only; elsewhere the stock gradient is best.
  registerExplicitTransposeMatMulGradient();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  current = { name: 'wasm', description: `wasm (${simd ? 'SIMD' : 'no SIMD'}, 1 thread)${fallbackReason}` };
  return current;
}

export function currentBackend(): BackendInfo | undefined {
  return current;
}
