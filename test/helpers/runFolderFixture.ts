// A run folder written by hand, in the formats the reporter writes: two methods with two seeds,
// `steps` metric rows per job, evaluations at log-spaced steps, results, timings, spec and run
// record. For tests of what reads run folders (report, live view) without running a pipeline.

import * as fs from 'fs';
import * as path from 'path';

export interface RunFolderOptions {
  readonly name?: string;
  readonly steps?: number;
  /** Leave out results.csv (a run still going). */
  readonly withoutResults?: boolean;
}

export const FIXTURE_METHODS = ['full', 'lora-r4'] as const;
export const FIXTURE_EVAL_STEPS = [1, 2, 4, 8, 16, 32, 64];

export function writeRunFolder(folder: string, options: RunFolderOptions = {}): string {
  const name = options.name ?? 'grid';
  const steps = options.steps ?? 64;
  fs.mkdirSync(folder, { recursive: true });
  const metrics = ['run,method,seed,step,epoch,loss,lr,images_per_second'];
  const evals = ['run,method,seed,step,new_task_accuracy,retention_k10,retention_k20,retention_unplugged_k10,retention_unplugged_k20,frozen_head_accuracy,seconds', `${name},pretrained,0,0,,91,90,,,,0.5`];
  const results = ['run,method,seed,trainable_params,new_task_accuracy,new_task_best,retention_accuracy,retention_unplugged,frozen_head_accuracy,mean_accuracy,steps,status,note', `${name},pretrained,0,0,,,90,,,,0,ok,`];
  const timings = ['run,method,seed,steps,status,seconds'];
  FIXTURE_METHODS.forEach((method, m) => {
    for (const seed of [0, 1]) {
      for (let step = 1; step <= steps; step++) metrics.push(`${name},${method},${seed},${step},0,${(2 / (1 + step * (m + 1)) + seed * 0.01).toFixed(5)},${(0.01 * (1 - step / steps)).toFixed(6)},500`);
      for (const step of FIXTURE_EVAL_STEPS.filter((s) => s <= steps)) {
        const retention = method === 'full' ? 90 - step / 2 - seed : 89 - seed;
        const unplugged = method === 'full' ? '' : '90';
        evals.push(`${name},${method},${seed},${step},${60 + step / 4 + seed},${retention + 1},${retention},${unplugged && '91'},${unplugged},,0.1`);
      }
      const newTask = 60 + steps / 4 + seed;
      const retention = method === 'full' ? 90 - steps / 2 - seed : 89 - seed;
      results.push(`${name},${method},${seed},${method === 'full' ? 27906 : 834},${newTask},${newTask},${retention},${method === 'full' ? '' : 90},,${(newTask + retention) / 2},${steps},ok,`);
      timings.push(`${name},${method},${seed},${steps},ok,${1.5 + m}`);
    }
  });
  fs.writeFileSync(path.join(folder, 'metrics.csv'), `${metrics.join('\n')}\n`);
  fs.writeFileSync(path.join(folder, 'evals.csv'), `${evals.join('\n')}\n`);
  if (!options.withoutResults) fs.writeFileSync(path.join(folder, 'results.csv'), `${results.join('\n')}\n`);
  fs.writeFileSync(path.join(folder, 'timings.csv'), `${timings.join('\n')}\n`);
  const pipeline = { name, train: { steps, batchSize: 16, lr: 0.01 }, evaluate: { every: 0, knn: { k: [10, 20], headline: 20 } }, methods: [{ method: 'full' }, { method: 'lora', rank: 4 }] };
  fs.writeFileSync(path.join(folder, 'spec.json'), JSON.stringify({ ...pipeline, resolved: { backend: 'wasm (SIMD, 1 thread)', checkpoint: '/models/vit.safetensors', model: { depth: 3, width: 32, heads: 2, patchSize: 4, imageSize: 16 }, knn: { k: [10, 20], headline: 20 } } }));
  fs.writeFileSync(path.join(folder, 'run.json'), JSON.stringify({ format: 'vitpeft-run/1', pipeline, file: '/pipelines/grid.json', baseDir: '/pipelines', options: { seeds: 2, saveModels: false }, backend: 'wasm (SIMD, 1 thread)' }));
  return folder;
}
