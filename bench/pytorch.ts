// The same cases in PyTorch (scripts/bench_pytorch.py, Debian's python3-torch), run right after
// vitpeft's in the same invocation, so the ratio compares two measurements of one machine in one
// state. PyTorch gets 1 OpenMP thread and 2 OpenBLAS threads (its best setting on 2 cores, where
// more threads only contend) and each case its best intra-op thread count of 1 and 2.

import { spawnSync } from 'child_process';
import * as path from 'path';

export interface PytorchCase {
  readonly images_per_second: number;
  readonly median_seconds: number;
  readonly threads: number;
}

export interface PytorchReport {
  readonly torch: string;
  readonly cases: Readonly<Record<string, PytorchCase>>;
}

/** The script's case ids (the same ids as vitpeft's bench). */
export const PYTORCH_CASES = ['train.full', 'train.lora-r8', 'train.block-p2', 'train.linear', 'train.default-full', 'train.default-lora-r8', 'eval.reference-b128', 'eval.default-b256', 'kernel.dense-default', 'kernel.dense-reference'];

export function runPytorch(ids: readonly string[], runs: number, warmup: number, python = process.env.VITPEFT_PYTHON ?? '/usr/bin/python3'): PytorchReport | { error: string } {
  const wanted = ids.filter((id) => PYTORCH_CASES.includes(id));
  if (wanted.length === 0) return { torch: 'not run', cases: {} };
  const script = path.join(__dirname, '..', '..', 'scripts', 'bench_pytorch.py');
  const result = spawnSync(python, [script, '--json', '--only', wanted.join(','), '--runs', String(runs), '--warmup', String(warmup)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '2' },
    maxBuffer: 16 * 1024 * 1024,
  });
  if (result.error) return { error: `${python}: ${result.error.message}` };
  const last = result.stdout.trim().split('\n').pop() ?? '';
  if (result.status !== 0 || !last.startsWith('{')) {
    const why = result.stderr.trim().split('\n').pop() ?? '';
    return { error: `${path.basename(script)} exited ${result.status}: ${why} (needs Debian's python3-torch and libopenblas0-pthread)` };
  }
  return JSON.parse(last) as PytorchReport;
}
