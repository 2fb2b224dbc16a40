// Choosing and starting the compute backend. 'auto' prefers TensorFlow's native library
// (tfjs-node-gpu, then tfjs-node; optional dependencies that exist only where their binary
// download worked) and falls back to WebAssembly, which installs from npm alone. WebAssembly
// runs multi-threaded (di/wasmThreads.ts): by default one thread per CPU core, or what
// --threads / VITPEFT_THREADS ask for. Threads pay only with idle cores: on a machine whose cores
// are busy with other work, or for tiny tensors, fewer threads can be faster (measured on a shared
// 2-core machine: training no faster with 2 threads than with 1 while another job held a core).

import './tfjsRegistrations';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as os from 'os';
import { registerExplicitTransposeMatMulGradient } from '../models/ops/explicitTransposeMatMul';
import { registerWasmProducts } from './wasmProducts';
import { registerWasmKernelOverrides } from './wasmKernels';
import { initWasmBackend } from './wasmThreads';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** The environment variable that sets the wasm thread count when no option does. */
export const THREADS_ENV = 'VITPEFT_THREADS';

export interface BackendOptions {
  /** Threads for the wasm backend (the calling thread included); default: VITPEFT_THREADS, else one per CPU core. */
  readonly threads?: number;
}

export interface BackendInfo {
  /** The tfjs backend name in use: tensorflow, wasm or cpu. */
  readonly name: string;
  /** Human-readable: which package, threads, why a fallback happened. */
  readonly description: string;
  /** Threads computing for the wasm and cpu backends; absent for tensorflow, which manages its own. */
  readonly threads?: number;
}

export function isBackendChoice(value: string): value is BackendChoice {
  return (BACKEND_CHOICES as readonly string[]).includes(value);
}

/** Logical CPU cores available to this process. */
export function cpuCores(): number {
  const available = (os as { availableParallelism?: () => number }).availableParallelism;
  return Math.max(1, available ? available() : os.cpus().length);
}

/**
 * The thread count to use: the explicit request, else VITPEFT_THREADS, else the number of CPU
 * cores. Throws, naming its source, if the value is not a positive integer.
 */
export function resolveThreads(requested: number | undefined, env: NodeJS.ProcessEnv = process.env): number {
  if (requested !== undefined) {
    if (!Number.isSafeInteger(requested) || requested < 1) throw new Error(`threads: expected a positive integer, got ${requested}`);
    return requested;
  }
  const fromEnv = env[THREADS_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    const value = Number(fromEnv);
    if (!/^\s*\d+\s*$/.test(fromEnv) || !Number.isSafeInteger(value) || value < 1) {
      throw new Error(`${THREADS_ENV}: expected a positive integer, got '${fromEnv}'`);
    }
    return value;
  }
  return cpuCores();
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

/** Whether a native TensorFlow package is installed (found, not loaded: `auto` would try it first). */
export function nativeInstalled(): boolean {
  return ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].some((name) => {
    try {
      require.resolve(name);
      return true;
    } catch {
      return false;
    }
  });
}

let current: BackendInfo | undefined;

/**
 * Starts the chosen backend once per process; later calls return what is running (and refuse a
 * different backend or an explicitly different thread count). Call it before creating tensors.
 */
export async function initBackend(choice: BackendChoice = 'auto', options: BackendOptions = {}): Promise<BackendInfo> {
  if (current) {
    if (!(choice === 'auto' || choice === current.name)) {
      throw new Error(`backend '${current.name}' is already running in this process; cannot switch to '${choice}'`);
    }
    if (options.threads !== undefined && current.threads !== undefined && options.threads !== current.threads && current.name === 'wasm') {
      throw new Error(`backend 'wasm' is already running with ${current.threads} thread(s) in this process; cannot switch to ${options.threads}`);
    }
    return current;
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
    fallbackReason = '; no native TensorFlow: install @tensorflow/tfjs-node or -gpu for it';
  }
  if (choice === 'cpu') {
    await tf.setBackend('cpu');
    current = { name: 'cpu', description: 'cpu (pure JavaScript, 1 thread, slow)', threads: 1 };
    return current;
  }
  const requested = resolveThreads(options.threads);
  const started = await initWasmBackend({ threads: requested });
  await tf.ready();
  // Flagged matMul is slow on wasm only; elsewhere the stock gradient is best.
  registerExplicitTransposeMatMulGradient();
  // Identity and same-dtype Cast share buffers instead of copying them (the gradient tape uses both).
  registerWasmKernelOverrides();
  // vitpeft's own kernels (weight gradients, GELU, attention, LayerNorm, optimizer updates) on tfjs's heap.
  const own = registerWasmProducts(started.threads);
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = `${started.threads} thread${started.threads === 1 ? '' : 's'}`;
  const shortfall = started.reason ? `; ${requested} requested: ${started.reason}` : '';
  const ownKernels = own.installed ? '' : `; without vitpeft's own kernels: ${own.reason}`;
  current = { name: 'wasm', description: `wasm (${simd ? 'SIMD' : 'no SIMD'}, ${threads}${shortfall}${ownKernels}${fallbackReason})`, threads: started.threads };
  return current;
}

export function currentBackend(): BackendInfo | undefined {
  return current;
}
