// Reads the results.csv of a learning-rate sweep (methods named NAME@lrRATE, see pipelines/spec.ts
// expandSweep; several run folders, e.g. shards or a follow-up with --seeds, are read together) and
// prints, per method, the rate with the best new-task accuracy on the sweep's test split — a
// validation split in pipelines/sweep-digits.json — averaged over the seeds run at that rate, and
// every rate's score, flagging a choice at the grid's edge. A rate where any seed failed (diverged,
// interrupted) is not chosen.
//
// A single seed cannot separate rates whose scores are close, so the script also names the close
// calls — methods whose two best rates are within CLOSE_CALL_POINTS of each other while either has
// fewer than FOLLOW_UP_SEEDS seeds — and prints the follow-up run that gives both that many seeds:
//   node dist/scripts/chooseLearningRates.js out/split-mnist-sweep [more run folders]

import 'reflect-metadata';
import * as fs from 'fs';
import * as path from 'path';
import { readResultsFile } from '../stages/reporter/resultsFile';

/** Accuracy points within which two rates' single-seed scores do not separate them. */
export const CLOSE_CALL_POINTS = 2.5;
/** Seeds per rate that settle a close call. */
export const FOLLOW_UP_SEEDS = 3;

export interface RateScore {
  readonly lr: number;
  /** The rate as written in the method name (`full@lr0.003` -> '0.003'). */
  readonly lrText: string;
  /** Mean new-task accuracy over the seeds, when every seed ended ok. */
  readonly accuracy?: number;
  readonly seeds: number;
  /** 'ok', or the status of the first seed that did not end ok. */
  readonly status: string;
}

export interface Choice {
  readonly method: string;
  readonly lr: number;
  readonly accuracy: number;
  readonly scores: readonly RateScore[];
  /** The runner-up rate when it is within CLOSE_CALL_POINTS and either has fewer than FOLLOW_UP_SEEDS seeds. */
  readonly closeCall?: RateScore;
}

export function chooseLearningRates(runDirs: readonly string[]): Choice[] {
  const results = runDirs.flatMap((runDir) => readResultsFile(path.join(runDir, 'results.csv')).results);
  // method -> rate text -> seed -> result (a seed seen in two folders counts once: the first).
  const runs = new Map<string, Map<string, Map<number, { accuracy?: number; status: string }>>>();
  for (const result of results) {
    const match = /^(.*)@lr([0-9.eE+-]+)$/.exec(result.method);
    if (!match) continue;
    const byRate = runs.get(match[1]) ?? new Map<string, Map<number, { accuracy?: number; status: string }>>();
    const bySeed = byRate.get(match[2]) ?? new Map<number, { accuracy?: number; status: string }>();
    if (!bySeed.has(result.seed)) bySeed.set(result.seed, { accuracy: result.status === 'ok' ? result.newTaskAccuracy : undefined, status: result.status });
    byRate.set(match[2], bySeed);
    runs.set(match[1], byRate);
  }
  return [...runs.entries()].flatMap(([method, byRate]) => {
    const scores: RateScore[] = [...byRate.entries()].map(([lrText, bySeed]) => {
      const seeds = [...bySeed.values()];
      const failed = seeds.find((s) => s.status !== 'ok' || s.accuracy === undefined);
      const accuracy = failed ? undefined : seeds.reduce((sum, s) => sum + s.accuracy!, 0) / seeds.length;
      return { lr: Number(lrText), lrText, accuracy, seeds: seeds.length, status: failed ? failed.status : 'ok' };
    });
    scores.sort((a, b) => a.lr - b.lr);
    // Best first; ties go to the smaller learning rate (the gentler change to the pretrained weights).
    const ranked = scores.filter((s) => s.accuracy !== undefined).sort((a, b) => b.accuracy! - a.accuracy! || a.lr - b.lr);
    if (ranked.length === 0) return [];
    const [best, second] = ranked;
    const close = second !== undefined && best.accuracy! - second.accuracy! <= CLOSE_CALL_POINTS && Math.min(best.seeds, second.seeds) < FOLLOW_UP_SEEDS;
    return [{ method, lr: best.lr, accuracy: best.accuracy!, scores, closeCall: close ? second : undefined }];
  });
}

/**
 * The follow-up run that gives every close call's two rates FOLLOW_UP_SEEDS seeds (undefined when
 * there are none); a rate that has them already is not run again.
 */
export function followUpCommand(choices: readonly Choice[], pipelineFile: string, outDir: string): string | undefined {
  const names = choices.flatMap((c) => {
    if (!c.closeCall) return [];
    const best = c.scores.find((s) => s.lr === c.lr)!;
    return [best, c.closeCall].filter((s) => s.seeds < FOLLOW_UP_SEEDS).map((s) => `${c.method}@lr${s.lrText}`);
  });
  if (names.length === 0) return undefined;
  return `node bin/vitpeft.js run ${pipelineFile} --only ${names.join(',')} --seeds ${FOLLOW_UP_SEEDS} --no-save-models --no-plots --out ${outDir}`;
}

/** `base`, or the first of base-2, base-3, ... that does not exist yet. */
export function freshFolder(base: string): string {
  if (!fs.existsSync(base)) return base;
  for (let n = 2; ; n++) if (!fs.existsSync(`${base}-${n}`)) return `${base}-${n}`;
}

/**
 * The pipeline file a run folder ran, as its run record names it: run.json, or for a run in
 * several worker processes (--workers), the first shard's under workers/.
 */
export function pipelineFileOf(runDir: string): string | undefined {
  const workers = path.join(runDir, 'workers');
  const shards = fs.existsSync(workers) ? fs.readdirSync(workers).sort().map((shard) => path.join(workers, shard, 'run.json')) : [];
  const record = [path.join(runDir, 'run.json'), ...shards].find((file) => fs.existsSync(file));
  return record === undefined ? undefined : (JSON.parse(fs.readFileSync(record, 'utf8')) as { file?: string }).file;
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
      if (score === undefined) return '';
      const text = score.accuracy !== undefined ? score.accuracy.toFixed(2) : score.status;
      return score.seeds > 1 ? `${text} (${score.seeds})` : text;
    }),
    `${c.lr}${c.lr === rates[0] || c.lr === rates[rates.length - 1] ? ' (grid edge)' : ''}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  process.stdout.write(`validation accuracy (%) by learning rate, mean over seeds (count in brackets when above 1), ${runDirs.join(' + ')}\n${line(header)}\n${rows.map(line).join('\n')}\n`);
  // The pipeline file the sweep ran, as its run record names it; the follow-up goes beside the
  // sweep, in a folder no earlier follow-up used (sweep-seeds, then sweep-seeds-2, ...).
  const followUpOut = freshFolder(path.join(path.dirname(runDirs[0]), 'sweep-seeds'));
  const command = followUpCommand(choices, pipelineFileOf(runDirs[0]) ?? 'PIPELINE', followUpOut);
  if (command) {
    const calls = choices.filter((c) => c.closeCall).map((c) => `${c.method} (${c.lr} vs ${c.closeCall!.lr})`);
    process.stdout.write(`close calls (two best rates within ${CLOSE_CALL_POINTS} points, fewer than ${FOLLOW_UP_SEEDS} seeds): ${calls.join(', ')}\n`);
    process.stdout.write(`settle them with ${FOLLOW_UP_SEEDS} seeds each, then choose again from both folders:\n  ${command}\n`);
    process.stdout.write(`  node dist/scripts/chooseLearningRates.js ${runDirs.join(' ')} ${path.join(followUpOut, path.basename(runDirs[0]))}\n`);
  }
}
