// A pipeline built as a typed object in code, not read from a file. PipelineSpec is the static
// type of the io-ts codec that decodes pipeline files, so the compiler already catches a wrong key
// or type; pipelineFromObject then runs the same codec, which also checks what a type cannot say
// (a positive batch size and learning rate, the headline k among the k-NN k's, unique method
// names, no unknown keys at run time) and refuses a bad pipeline with the path of each offending
// field, before anything runs.
//
//   node dist/examples/pipeline-in-code.js      (npm run examples runs it)

import { lastValueFrom } from 'rxjs';
import { PipelineSpecError, TOKENS, initBackend, pipeline, pipelineFromObject } from 'vitpeft';
import type { PipelineSpec, ReporterOptions } from 'vitpeft';
import { exampleOutDir, tinyDigitsSpec } from './tiny-digits.js';

async function main(): Promise<void> {
  // Typed: { method: 'lora', rank: 4 } type-checks; { method: 'lora', rnak: 4 } would not compile.
  const spec: PipelineSpec = { ...tinyDigitsSpec([{ method: 'lora', rank: 4 }, { method: 'block', p: 1, name: 'one-new-block' }]), name: 'in-code' };

  // Well-typed but invalid: the codec refuses it, naming every field.
  const invalid: PipelineSpec = { ...spec, train: { ...spec.train, batchSize: 0, lr: -0.1 } };
  try {
    pipelineFromObject(invalid, { baseDir: process.cwd() });
    throw new Error('the invalid pipeline was accepted');
  } catch (error) {
    if (!(error instanceof PipelineSpecError)) throw error;
    console.log(`refused, as it should be:\n${error.message}\n`);
  }

  const backend = await initBackend('auto');
  const outDir = exampleOutDir('pipeline-in-code');
  const composed = pipeline();
  composed.container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, plots: false, err: () => undefined } });
  await lastValueFrom(composed.run(pipelineFromObject(spec, { baseDir: process.cwd() }), { outDir, backend: backend.name, saveModels: false }));
  console.log(`results in ${outDir}/results.csv`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
