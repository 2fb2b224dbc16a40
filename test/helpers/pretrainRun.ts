// Shared by the pretraining and reliability tests: a pretraining run from its file (or resumed
// from its folder), a stop signal that turns on after a number of steps, and a CSV's rows with
// one column (a wall time) left out, for comparing two runs.

import { parse } from 'csv-parse/sync';
import * as fs from 'fs';
import type { StopSignal } from '../../common/stopSignal';
import { pipeline } from '../../pipelines/composer';
import { PretrainResult, pretrain, readPretrainRecord } from '../../pipelines/pretrain';
import { loadPretrainFile } from '../../pipelines/pretrainSpec';

/** A stop signal that turns on after `after` steps (the loop reads it once per step). */
export function stopAfter(after: number): StopSignal {
  let reads = 0;
  return {
    get requested() {
      reads++;
      return reads >= after;
    },
  };
}

/** Pretrains the file into outDir, or with `resume` continues the pretraining saved there. */
export function runPretraining(file: string, outDir: string, options: { stop?: StopSignal; resume?: boolean } = {}): Promise<PretrainResult> {
  const loaded = options.resume ? readPretrainRecord(outDir) : loadPretrainFile(file);
  return pretrain(pipeline().stages, loaded, { outDir, log: () => undefined, ...options });
}

/** A CSV file's rows as `column=value` cells, without `dropColumn`. */
export function csvRowsWithout(file: string, dropColumn: string): string[][] {
  const records = parse(fs.readFileSync(file, 'utf8'), { columns: true }) as Record<string, string>[];
  return records.map((record) => Object.entries(record).filter(([column]) => column !== dropColumn).map(([column, value]) => `${column}=${value}`));
}
