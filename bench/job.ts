// A whole job of the built-in default, timed end to end: `vitpeft run --only <method>` in
// process (model and data loaded, the baseline, 200 training steps and their evaluations), with
// the wall time split into the training steps' own time, the evaluations' and the rest.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { lastValueFrom, tap } from 'rxjs';
import { TOKENS } from '../di/tokens';
import { DEFAULT_PIPELINE } from '../pipelines/builtin';
import { pipeline } from '../pipelines/composer';
import { loadPipelineFile } from '../pipelines/spec';
import type { BenchCase } from './measure';

export function jobCase(name: string, method: string): BenchCase {
  const loaded = loadPipelineFile(DEFAULT_PIPELINE);
  const { steps, batchSize } = loaded.spec.train;
  return {
    group: 'job',
    name,
    batch: steps * batchSize,
    description: `vitpeft run --only ${method} of the default: the whole job (baseline, ${steps} steps, evaluations every ${loaded.spec.evaluate?.every ?? 0}); img/s = training images / wall time`,
    fixedRuns: { warmup: 0, runs: 1 },
    async measure() {
      const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-bench-job-'));
      const composed = pipeline();
      composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, out: () => undefined, err: () => undefined } });
      let trainingSeconds = 0;
      let evaluationSeconds = 0;
      let baselineSeconds = 0;
      const cpu = process.cpuUsage();
      const started = process.hrtime.bigint();
      try {
        await lastValueFrom(
          composed.run(loaded, { outDir, only: [method], saveModels: false }).pipe(
            tap((event) => {
              if (event.kind === 'step') trainingSeconds += batchSize / event.imagesPerSecond;
              else if (event.kind === 'eval' && event.method === 'pretrained') baselineSeconds += event.seconds;
              else if (event.kind === 'eval') evaluationSeconds += event.seconds;
            }),
          ),
        );
      } finally {
        fs.rmSync(outDir, { recursive: true, force: true });
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const used = process.cpuUsage(cpu);
      const cpuSeconds = (used.user + used.system) / 1e6;
      return {
        seconds: [seconds],
        minSeconds: seconds,
        medianSeconds: seconds,
        cpuSeconds: [cpuSeconds],
        medianCpuSeconds: cpuSeconds,
        parts: { training_seconds: trainingSeconds, evaluation_seconds: evaluationSeconds, baseline_seconds: baselineSeconds, evaluation_share_of_job: evaluationSeconds / (seconds - baselineSeconds) },
      };
    },
  };
}
