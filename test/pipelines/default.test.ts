// The built-in default works offline from a fresh clone: a shortened version of
// pipelines/default.json (same model, data, methods' surgery; few steps, small data) runs end to
// end, twice, and the same seed gives the same results.csv byte for byte.

import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { lastValueFrom } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { DEFAULT_PIPELINE } from '../../pipelines/builtin';
import { pipeline } from '../../pipelines/composer';
import { LoadedPipeline, decodePipeline, loadPipelineFile, methodName } from '../../pipelines/spec';
import { readCsv } from '../../stages/reporter/csvLog';
import { tempFolder } from '../helpers/datasetFixtures';

function shortened(): LoadedPipeline {
  const loaded = loadPipelineFile(DEFAULT_PIPELINE);
  const spec = JSON.parse(JSON.stringify(loaded.spec));
  spec.data.train = 'mnist:train?classes=5-9&perClass=20';
  spec.data.test = 'mnist:test?classes=5-9&perClass=10';
  spec.data.retention = { bank: 'mnist:train?classes=0-4&perClass=20', query: 'mnist:test?classes=0-4&perClass=10' };
  spec.train = { ...spec.train, steps: 3, batchSize: 8, warmupSteps: 1 };
  spec.evaluate = { ...spec.evaluate, every: 0, at: [0, 1] };
  spec.methods = spec.methods.filter((entry: { method: string }, i: number, all: Array<{ method: string }>) => all.findIndex((e) => e.method === entry.method) === i);
  return { ...loaded, spec: decodePipeline(spec, loaded.file) };
}

async function run(outDir: string): Promise<void> {
  const composed = pipeline();
  composed.container.register(TOKENS.reporterOptions, { useValue: { outDir, interactive: false, out: () => undefined, err: () => undefined, plots: false } });
  await lastValueFrom(composed.run(shortened(), { outDir, saveModels: false }));
}

describe('the built-in default (shortened)', () => {
  it('runs offline on the shipped model and npm digits; the same seed gives the same results.csv', async () => {
    const folder = tempFolder('vitpeft-default-');
    const first = path.join(folder, 'a');
    const second = path.join(folder, 'b');
    await run(first);
    await run(second);
    const rows = readCsv(path.join(first, 'results.csv'));
    expect(rows.map((r) => r.method)).to.deep.equal(['pretrained', ...shortened().spec.methods.map(methodName)]);
    expect(rows.every((r) => r.status === 'ok')).to.equal(true);
    expect(Number(rows[0].retention_accuracy)).to.be.above(80);
    expect(fs.readFileSync(path.join(second, 'results.csv'), 'utf8')).to.equal(fs.readFileSync(path.join(first, 'results.csv'), 'utf8'));
  });
});
