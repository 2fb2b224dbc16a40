// A custom pipeline in code. Two stages change:
// - the reporter is replaced: JsonLinesReporter streams every event as one JSON line to a sink
//   of your choice (here a file) instead of writing the default CSVs, table and plots;
// - the evaluator is wrapped: TopTwoEvaluator resolves the default evaluator through the
//   pipeline's DI container, lets it measure as usual, and adds a metric of its own (top-2
//   accuracy on the new task), which reaches subscribers on the eval events' `metrics`.
// The dataset, surgery and trainer stages stay the defaults.
//
//   node dist/examples/custom-stages.js        (npm run examples runs it)

import * as fs from 'fs';
import * as path from 'path';
import { type MonoTypeOperatorFunction, type Observable, finalize, lastValueFrom, tap } from 'rxjs';
import { TOKENS, initBackend, pipeline, tf } from 'vitpeft';
import type { DatasetStage, EvaluationData, EvaluationRequest, EvaluationResult, EvaluatorStage, PipelineEvent, ReporterStage, VisionTransformer } from 'vitpeft';
import { exampleOutDir, tinyDigitsPipeline } from './tiny-digits.js';

/** Replaces the default reporter: each event becomes one JSON line on `sink`. */
class JsonLinesReporter implements ReporterStage {
  constructor(private readonly sink: NodeJS.WritableStream) {}

  record(): MonoTypeOperatorFunction<PipelineEvent> {
    // The operator must pass every event on: the run's caller sees what comes out of it.
    return (events: Observable<PipelineEvent>) =>
      events.pipe(
        tap((event) => this.sink.write(`${JSON.stringify(event)}\n`)),
        finalize(() => this.sink.end()),
      );
  }
}

/** Wraps an evaluator: its results, plus top-2 accuracy of the head on the new task's test split. */
class TopTwoEvaluator implements EvaluatorStage {
  constructor(
    private readonly inner: EvaluatorStage,
    private readonly dataset: DatasetStage,
  ) {}

  async evaluate(model: VisionTransformer, data: EvaluationData, request: EvaluationRequest): Promise<EvaluationResult> {
    const result = await this.inner.evaluate(model, data, request);
    if (!request.newTask) return result;
    return { ...result, metrics: { ...result.metrics, topTwoAccuracy: await this.topTwoAccuracy(model, data) } };
  }

  private async topTwoAccuracy(model: VisionTransformer, data: EvaluationData): Promise<number> {
    let correct = 0;
    let count = 0;
    const { source, transform } = data.test;
    await lastValueFrom(
      this.dataset.batches(source, { batchSize: data.batchSize, shuffle: false, epochs: 1, transform }).pipe(
        tap((batch) => {
          try {
            // tidy disposes every intermediate tensor; only the plain numbers leave it.
            const hits = tf.tidy(() => {
              const topTwo = tf.topk(model.forward(batch.images), 2).indices;
              const hit = tf.any(tf.equal(topTwo, tf.expandDims(batch.labels, 1)), 1);
              return tf.sum(tf.cast(hit, 'int32')).dataSync()[0];
            });
            correct += hits ?? 0;
            count += batch.indices.length;
          } finally {
            batch.dispose(); // the batch's tensors belong to whoever receives it
          }
        }),
      ),
      { defaultValue: undefined },
    );
    return (100 * correct) / Math.max(1, count);
  }
}

async function main(): Promise<void> {
  const backend = await initBackend('auto');
  const outDir = exampleOutDir('custom-stages');
  const eventsFile = path.join(outDir, 'events.jsonl');

  // Replacing a stage: one key.
  const composed = pipeline({ reporter: new JsonLinesReporter(fs.createWriteStream(eventsFile)) });
  // Wrapping one: resolve the default from the container, register the wrapper over it.
  const defaultEvaluator = composed.container.resolve<EvaluatorStage>(TOKENS.evaluator);
  const dataset = composed.container.resolve<DatasetStage>(TOKENS.dataset);
  composed.container.register<EvaluatorStage>(TOKENS.evaluator, { useValue: new TopTwoEvaluator(defaultEvaluator, dataset) });

  const end = await lastValueFrom(composed.run(tinyDigitsPipeline(), { outDir, backend: backend.name, saveModels: false }));
  if (end.kind !== 'run-end') throw new Error(`the run ended with a '${end.kind}' event`);
  for (const result of end.results) {
    console.log(`${result.method.padEnd(10)} new task ${result.newTaskAccuracy?.toFixed(1)}%  retention ${result.retentionAccuracy?.toFixed(1)}%`);
  }
  const lines = fs.readFileSync(eventsFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as PipelineEvent);
  const topTwo = lines.flatMap((event) => (event.kind === 'eval' && event.metrics ? [`${event.method}@${event.step}: ${event.metrics['topTwoAccuracy']?.toFixed(1)}%`] : []));
  console.log(`top-2 accuracy (added by the wrapped evaluator): ${topTwo.join(', ')}`);
  console.log(`${lines.length} events streamed to ${eventsFile}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
