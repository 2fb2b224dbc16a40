// Streaming metrics: subscribe to the run's event stream and write your own files while the run
// goes — every training step as a CSV row (csv-stringify's streaming API) and every evaluation as
// a JSON line — beside the default reporter's outputs, which stay on. Each row is written when its
// event arrives, so a long run can be watched (tail -f) or interrupted without losing rows.
//
//   node dist/examples/stream-metrics.js        (npm run examples runs it)

import * as fs from 'fs';
import * as path from 'path';
import { once } from 'events';
import { stringify } from 'csv-stringify';
import { finalize, lastValueFrom, tap } from 'rxjs';
import { TOKENS, initBackend, pipeline } from 'vitpeft';
import type { PipelineEvent, ReporterOptions } from 'vitpeft';
import { exampleOutDir, tinyDigitsPipeline } from './tiny-digits.js';

async function main(): Promise<void> {
  const backend = await initBackend('auto');
  const outDir = exampleOutDir('stream-metrics');

  const stepsCsv = stringify({ header: true, columns: ['method', 'seed', 'step', 'loss', 'lr'] });
  const stepsFile = fs.createWriteStream(path.join(outDir, 'my-steps.csv'));
  stepsCsv.pipe(stepsFile);
  const evalsFile = fs.createWriteStream(path.join(outDir, 'my-evals.jsonl'));

  const composed = pipeline();
  // The default reporter still writes metrics.csv, results.csv, ... into outDir; keep it quiet.
  composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, err: () => undefined } });

  const write = (event: PipelineEvent): void => {
    if (event.kind === 'step') stepsCsv.write({ method: event.method, seed: event.seed, step: event.step, loss: event.loss, lr: event.lr });
    if (event.kind === 'eval') {
      evalsFile.write(`${JSON.stringify({ method: event.method, step: event.step, newTask: event.newTaskAccuracy, retention: event.retention })}\n`);
    }
  };
  await lastValueFrom(
    composed.run(tinyDigitsPipeline(), { outDir, backend: backend.name, saveModels: false }).pipe(
      tap(write),
      finalize(() => {
        stepsCsv.end();
        evalsFile.end();
      }),
    ),
  );
  await Promise.all([once(stepsFile, 'finish'), once(evalsFile, 'finish')]);

  const steps = fs.readFileSync(path.join(outDir, 'my-steps.csv'), 'utf8').trim().split('\n');
  const evals = fs.readFileSync(path.join(outDir, 'my-evals.jsonl'), 'utf8').trim().split('\n');
  console.log(`${steps.length - 1} step rows in ${path.join(outDir, 'my-steps.csv')}; the last: ${steps[steps.length - 1]}`);
  console.log(`${evals.length} evaluations in ${path.join(outDir, 'my-evals.jsonl')}; the last: ${evals[evals.length - 1]}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
