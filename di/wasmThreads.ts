// Multi-threaded WebAssembly backend under Node.js, from the stock npm packages alone.
//
// @tensorflow/tfjs-backend-wasm ships a threaded+SIMD build (wasm-out/tfjs-backend-wasm-threaded-simd
// .js/.wasm plus the pthread worker source as a string in ...worker.js), but its own init() never
// uses it under Node, for two reasons:
//   1. the WASM_HAS_MULTITHREAD_SUPPORT flag returns false whenever IS_NODE (tfjs issue 3830);
//   2. forcing the flag true fails anyway: init() hands Emscripten a `blob:` URL for the pthread
//      worker and a Blob for the main script, and Node's worker_threads.Worker accepts neither
//      (ERR_WORKER_PATH "must be an absolute path or a relative path ...").
// A third obstacle appears once those are fixed: the C++ side caps the XNNPACK pool at
// emscripten_num_logical_cores() / 2, which in Node is os.cpus().length / 2 (so 1 on a 2-core machine).
//
// This module therefore calls the threaded Emscripten factory itself, with only options that the
// glue supports, and wraps the result in the package's exported BackendWasm class (the wasm
// kernels are registered per backend *name*, so they apply unchanged):
//   - locateFile('...worker.js') returns a `data:` URL holding a small ES-module bootstrap that
//     gives the worker the CommonJS globals it expects (require, __filename) and evaluates the
//     package's own worker source; the worker then loads the glue from its real path given as
//     mainScriptUrlOrBlob;
//   - instantiateWasm instantiates the package's .wasm itself, replacing only the
//     emscripten_num_logical_cores import so that the cap allows the requested thread count;
//   - after start-up the pthread workers that XNNPACK keeps running are unref()'d, so they do not
//     keep the process alive, and the idle pre-spawned workers (the glue always starts 8) are ended.
// Nothing under node_modules is modified. If anything is missing or fails, the stock
// single-threaded backend is started instead and the reason is reported.

import * as tf from '@tensorflow/tfjs-core';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import * as fs from 'fs';
import * as path from 'path';

export interface WasmThreadsOptions {
  /** Threads for XNNPACK's pool, the calling thread included. 1 (or less) means single-threaded. */
  threads: number;
  /** Give up on the threaded start after this long and fall back (default 30000 ms). */
  timeoutMs?: number;
}

export interface WasmThreadsResult {
  /** Threads in XNNPACK's pool actually in use (as reported by the wasm module). */
  threads: number;
  /** Why fewer threads than requested are in use; absent when the request was met. */
  reason?: string;
}

/** Emscripten's pthread pool: the glue pre-spawns this many workers, and the C++ side caps at it. */
const MAX_THREADS = 8;
const WASM_PRIORITY = 2; // the priority @tensorflow/tfjs-backend-wasm registers 'wasm' with
const GLUE = '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js';
const WORKER_SOURCE = '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js';
const WASM_BINARY = 'tfjs-backend-wasm-threaded-simd.wasm';
const LOAD_FAILED = 'vitpeft:pthread-load-failed';

/** The parts of the threaded Emscripten module used here (the glue is untyped JavaScript). */
interface NodeWorkerLike {
  unref(): void;
  terminate(): unknown;
}
interface ThreadedModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  PThread: { runningWorkers: NodeWorkerLike[]; unusedWorkers: NodeWorkerLike[]; terminateAllThreads(): void };
  tfjs?: Record<string, unknown>;
}
type EmscriptenFactory = (config: Record<string, unknown>) => Promise<ThreadedModule>;

/** The WebAssembly API used here, declared locally: the project's lib (ES2022) has no WebAssembly types. */
interface WebAssemblyApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => { buffer: unknown };
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: object; module: object }>;
}
function webAssembly(): WebAssemblyApi | undefined {
  return (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
}

interface State {
  requested: number;
  result: WasmThreadsResult;
}
let state: State | undefined;
let stockFactory: (() => tf.KernelBackend | Promise<tf.KernelBackend>) | undefined;

/**
 * Registers and starts tfjs's 'wasm' backend with `threads` XNNPACK threads, and makes it the
 * active backend. Call it once at start-up, before any tensor is created: re-initialising
 * disposes the previous wasm backend and every tensor on it. A repeated call with the same
 * request returns the cached result.
 *
 * `threads` is not capped at the number of CPU cores: asking for more threads than idle cores
 * oversubscribes the machine, and XNNPACK's threads then wait on each other (measure first).
 *
 * Where threads are not possible (not Node, no SharedArrayBuffer / worker_threads / WebAssembly
 * threads or SIMD, package layout changed, start-up error or timeout) the stock single-threaded
 * backend is started and `reason` says why. Throws only if even that fails.
 */
export async function initWasmBackend(options: WasmThreadsOptions): Promise<WasmThreadsResult> {
  const requested = Math.max(1, Math.floor(options.threads));
  if (state && state.requested === requested && tf.getBackend() === 'wasm' && tf.findBackend('wasm')) {
    return state.result;
  }
  if (!stockFactory) {
    const factory = tf.findBackendFactory('wasm');
    if (!factory) throw new Error("the 'wasm' backend is not registered (is @tensorflow/tfjs-backend-wasm installed?)");
    stockFactory = factory;
  }

  let reason: string | undefined;
  if (requested > 1) {
    const threads = Math.min(requested, MAX_THREADS);
    const blocker = await threadBlocker();
    if (blocker) {
      reason = blocker;
    } else {
      let backend: tf.KernelBackend | undefined;
      try {
        backend = await startThreaded(threads, options.timeoutMs ?? 30000);
        const started = backend;
        replaceWasmFactory(() => started);
        if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend rejected the threaded backend');
        const actual = tfwasm.getThreadsCount();
        let note: string | undefined;
        if (actual < requested) {
          note = requested > MAX_THREADS
            ? `capped at ${MAX_THREADS} threads (the Emscripten pthread pool size of this build)`
            : `the wasm module started ${actual} of ${requested} threads`;
        }
        state = { requested, result: note ? { threads: actual, reason: note } : { threads: actual } };
        return state.result;
      } catch (error) {
        reason = `threaded start failed: ${(error as Error)?.message ?? String(error)}`;
        if (backend && !tf.findBackend('wasm')) backend.dispose(); // ends its pthread workers
      }
    }
  }

  tfwasm.setThreadsCount(1);
  // The stock init can only start the threaded build through Blob URLs, which Node rejects.
  if (isNode() && (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'))) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  replaceWasmFactory(stockFactory);
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to start');
  const threads = tfwasm.getThreadsCount();
  state = { requested, result: reason ? { threads, reason } : { threads } };
  return state.result;
}

/** The result of the last successful initWasmBackend call, if any. */
export function wasmThreadsInUse(): WasmThreadsResult | undefined {
  return state?.result;
}

function replaceWasmFactory(factory: () => tf.KernelBackend | Promise<tf.KernelBackend>): void {
  if (tf.findBackendFactory('wasm')) tf.removeBackend('wasm'); // disposes a started wasm backend
  tf.registerBackend('wasm', factory, WASM_PRIORITY);
}

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

/** Why threads cannot work here, or undefined when all prerequisites are present. */
async function threadBlocker(): Promise<string | undefined> {
  if (!isNode()) return 'not running under Node.js';
  if (typeof SharedArrayBuffer === 'undefined') return 'SharedArrayBuffer is not available';
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('worker_threads');
  } catch {
    return 'the worker_threads module is not available';
  }
  const wasm = webAssembly();
  if (!wasm) return 'WebAssembly is not available';
  try {
    const memory = new wasm.Memory({ initial: 1, maximum: 1, shared: true });
    if (!(memory.buffer instanceof SharedArrayBuffer)) return 'WebAssembly shared memory is not supported';
  } catch {
    return 'WebAssembly threads (shared memory) are not supported';
  }
  if (!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))) {
    return 'WebAssembly SIMD is not supported (the threaded build is SIMD-only)';
  }
  try {
    const glue = require.resolve(GLUE);
    require.resolve(WORKER_SOURCE);
    fs.accessSync(path.join(path.dirname(glue), WASM_BINARY), fs.constants.R_OK);
  } catch (error) {
    return `the threaded build is missing from @tensorflow/tfjs-backend-wasm: ${(error as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

/**
 * The pthread worker's entry point, as a data: URL (Node runs those as ES modules). It provides
 * the CommonJS globals the Emscripten worker source uses and evaluates the package's worker
 * source unchanged. A failure to start or to handle the 'load' command is posted as a message
 * instead of surfacing as a worker 'error' event: the glue rethrows those on the main thread,
 * which would crash the process instead of falling back.
 */
function workerUrl(gluePath: string): URL {
  // The source is a template literal in the package; its "\n" escapes became real newlines,
  // which are illegal inside the string literals they sit in. tfjs's own init() does the same.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const source = (require(WORKER_SOURCE) as { wasmWorkerContents: string }).wasmWorkerContents.replace(/\n/g, '\\n');
  const bootstrap = `import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
const fail = (error) => parentPort.postMessage({ cmd: ${JSON.stringify(LOAD_FAILED)}, error: String((error && error.message) || error) });
globalThis.require = createRequire(${JSON.stringify(gluePath)});
globalThis.__filename = ${JSON.stringify(gluePath)};
globalThis.__dirname = ${JSON.stringify(path.dirname(gluePath))};
let started = false;
try {
  (0, eval)(${JSON.stringify(source)});
  started = true;
} catch (error) {
  fail(error);
}
if (started) {
  const handle = globalThis.onmessage;
  globalThis.onmessage = (e) => {
    if (e.data && e.data.cmd === 'load') {
      try { handle(e); } catch (error) { fail(error); }
    } else {
      handle(e);
    }
  };
}
`;
  return new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`);
}

/** Starts the threaded Emscripten module and wraps it in the package's BackendWasm. */
async function startThreaded(threads: number, timeoutMs: number): Promise<tf.KernelBackend> {
  const gluePath = require.resolve(GLUE);
  const wasmPath = path.join(path.dirname(gluePath), WASM_BINARY);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const factory = require(gluePath) as EmscriptenFactory;
  const url = workerUrl(gluePath);

  let fail: (error: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  // A rejection nobody awaits any more would be rethrown by the glue's unhandledRejection hook.
  failed.catch(() => undefined);
  // Emscripten uses the config object itself as its Module, so PThread is reachable from it.
  const config: Record<string, unknown> = {
    mainScriptUrlOrBlob: gluePath,
    locateFile: (file: string, prefix: string): string | URL =>
      file.endsWith('.worker.js') ? url : file.endsWith('.wasm') ? wasmPath : prefix + file,
    instantiateWasm: (imports: { env: Record<string, unknown> }, receive: (instance: object, module: object) => void) => {
      // backend.cc: threads = min(requested, 8, emscripten_num_logical_cores() / 2).
      imports.env.emscripten_num_logical_cores = () => 2 * threads;
      (webAssembly() as WebAssemblyApi).instantiate(fs.readFileSync(wasmPath), imports).then(
        (source) => receive(source.instance, source.module),
        (error: unknown) => fail(new Error(`instantiating ${WASM_BINARY}: ${String(error)}`)),
      );
      return {};
    },
    onAbort: (what: unknown) => fail(new Error(`the wasm module aborted: ${String(what)}`)),
    // The glue logs our load-failure message as an unknown command; that is reported via `reason`.
    printErr: (text: string) => {
      if (!text.includes(LOAD_FAILED)) process.stderr.write(`${text}\n`);
    },
  };

  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no start within ${timeoutMs} ms`)), timeoutMs);
  });
  let module: ThreadedModule;
  let watch: { started(): void } | undefined;
  try {
    const ready = factory(config);
    ready.catch(() => undefined);
    watch = watchWorkers(config, fail);
    module = await Promise.race([ready, failed, timeout]);
    watch.started();
  } catch (error) {
    (config.PThread as ThreadedModule['PThread'] | undefined)?.terminateAllThreads();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  // The same bridge tfjs's init() adds (backend_wasm.ts).
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  tfwasm.setThreadsCount(threads);
  // The constructor calls init_with_threads_count, which creates XNNPACK's pthreadpool; each of
  // its threads - 1 pthreads is handed to one of the workers the glue loaded before resolving.
  const backend = new tfwasm.BackendWasm(module as unknown as ConstructorParameters<typeof tfwasm.BackendWasm>[0]);
  // Running pthread workers are ref()'d by the glue and would keep Node alive forever; XNNPACK's
  // threads only ever wait for work, so let the process exit without them.
  for (const worker of module.PThread.runningWorkers) worker.unref();
  // The glue pre-spawns 8 workers (a V8 isolate each); nothing creates threads after this point.
  for (const worker of module.PThread.unusedWorkers) void worker.terminate();
  module.PThread.unusedWorkers.length = 0;
  return backend;
}

/**
 * Until start-up has succeeded, turns a worker's failure into a rejection of the start-up instead of a
 * crash: the load-failure message posted by workerUrl's bootstrap, and worker 'error' events,
 * which the glue's worker.onerror would rethrow on the main thread. The glue assigns onerror
 * later (when it sends the wasm module), so a property wrapper catches that assignment.
 */
function watchWorkers(config: Record<string, unknown>, fail: (error: Error) => void): { started(): void } {
  let starting = true;
  const pthread = config.PThread as { unusedWorkers?: object[] } | undefined;
  for (const worker of pthread?.unusedWorkers ?? []) {
    const node = worker as { on?: (event: string, listener: (data: unknown) => void) => void };
    node.on?.('message', (data: unknown) => {
      const message = data as { cmd?: string; error?: string } | null;
      if (starting && message?.cmd === LOAD_FAILED) fail(new Error(`a pthread worker failed to load: ${message.error ?? ''}`));
    });
    let handler: ((event: unknown) => void) | undefined;
    Object.defineProperty(worker, 'onerror', {
      configurable: true,
      get: () => handler,
      set: (glueHandler: (event: unknown) => void) => {
        handler = (event: unknown) => {
          if (!starting) return glueHandler(event);
          fail(new Error(`a pthread worker failed: ${String((event as Error)?.message ?? event)}`));
        };
      },
    });
  }
  return {
    // Only a successful start hands errors back to the glue; after a failed one, the remaining
    // workers' queued errors keep going to the (already settled, so inert) rejection.
    started: () => {
      starting = false;
    },
  };
}
