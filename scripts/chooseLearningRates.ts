// Reads the results.csv of a learning-rate sweep (methods named NAME@lrRATE, see pipelines/spec.ts
// expandSweep; several run folders, e.g. shards, are read together) and prints, per method, the
// rate with the best new-task accuracy on the sweep's test split — a validation split in
// pipelines/sweep-digits.json — and every rate's score, flagging a choice at the grid's edge.
//   node dist/scripts/chooseLearningRates.js out/split-mnist-sweep [more run folders]

import 'reflect-metadata';
import * as path from 'path';
import { readResultsFile } from '../stages/reporter/resultsFile';

export interface Choice {
  readonly method: string;
  readonly lr: number;
  readonly accuracy: number;
  readonly scores: ReadonlyArray<{ readonly lr: number; readonly accuracy?: number; readonly status: string }>;
}

export function chooseLearningRates(runDirs: readonly string[]): Choice[] {
  const results = runDirs.flatMap((runDir) => readResultsFile(path.join(runDir, 'results.csv')).results);
  const byMethod = new Map<string, Array<{ lr: number; accuracy?: number; status: string }>>();
  for (const result of results) {
    const match = /^(.*)@lr([0-9.eE+-]+)$/.exec(result.method);
    if (!match) continue;
    const list = byMethod.get(match[1]) ?? [];
    list.push({ lr: Number(match[2]), accuracy: result.status === 'ok' ? result.newTaskAccuracy : undefined, status: result.status });
    byMethod.set(match[1], list);
  }
  return [...byMethod.entries()].flatMap(([method, scores]) => {
    const scored = scores.filter((s) => s.accuracy !== undefined);
    if (scored.length === 0) return [];
    // Ties go to the smaller learning rate (the gentler change to the pretrained weights).
    const best = scored.reduce((a, b) => (b.accuracy! > a.accuracy! || (b.accuracy === a.accuracy && b.lr < a.lr) ? b : a));
    return [{ method, lr: best.lr, accuracy: best.accuracy!, scores }];
  });
}

if (require.main === module) {
  const runDirs = process.argv.slice(2);
  if (runDirs.length === 0) {
    process.stderr.write('usage: node dist/scripts/chooseLearningRates.js out/<sweep run> [more run folders]\n');
    process.exit(2);
  }
  const choices = chooseLearningRates(runDirs);
  const rates = [...new Set(choices.flatMap((c) => c.scores.map((s) => s.lr)))].sort((a, b) => a - b);
  const header = ['method', ...rates.map((lr) => `lr ${lr}`), 'chosen'];
  const rows = choices.map((c) => [
    c.method,
    ...rates.map((lr) => {
      const score = c.scores.find((s) => s.lr === lr);
      return score === undefined ? '' : score.accuracy !== undefined ? score.accuracy.toFixed(2) : score.status;
    }),
    `${c.lr}${c.lr === rates[0] || c.lr === rates[rates.length - 1] ? ' (grid edge)' : ''}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  process.stdout.write(`validation accuracy (%) by learning rate, ${runDirs.join(' + ')}\n${line(header)}\n${rows.map(line).join('\n')}\n`);
}
