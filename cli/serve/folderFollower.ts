// The live feed of a run started elsewhere (another process, another `vitpeft run`): its folder's
// CSV files followed as they grow. New whole lines of metrics.csv and evals.csv become step and
// evaluation events, a rewritten results.csv becomes method-end events, report.html appearing
// ends the run. A file that shrinks (the run started afresh, or was trimmed for a resume)
// restarts the followers from its history (`onReset`).

import * as fs from 'fs';
import * as path from 'path';
import type { PipelineEvent } from '../../common/events';
import { evalFromRow, parseCsvRows, resultsEvents, stepFromRow } from '../../stages/reporter/report/runHistory';
import { readRunInfo } from '../../stages/reporter/report/runInfo';
import type { LiveSource } from './eventHub';

export const POLL_MS = 400;

interface Tail {
  offset: number;
  header?: string;
}

function size(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function stamp(file: string): string {
  try {
    const stat = fs.statSync(file);
    return `${stat.mtimeMs}:${stat.size}`;
  } catch {
    return '';
  }
}

export class FolderFollower implements LiveSource {
  constructor(
    private readonly folder: string,
    private readonly onReset: () => void,
    private readonly pollMs = POLL_MS,
  ) {}

  follow(listener: (events: readonly PipelineEvent[]) => void): () => void {
    const metrics = path.join(this.folder, 'metrics.csv');
    const evals = path.join(this.folder, 'evals.csv');
    const results = path.join(this.folder, 'results.csv');
    const report = path.join(this.folder, 'report.html');
    // Start at the files' current ends: what is there already is the history a client was sent.
    const tails = new Map<string, Tail>([
      [metrics, { offset: size(metrics) }],
      [evals, { offset: size(evals) }],
    ]);
    let resultsStamp = stamp(results);
    let reportStamp = stamp(report);
    let steps = 0;
    const readNew = (file: string): Record<string, string>[] => {
      const tail = tails.get(file)!;
      const now = size(file);
      if (now < tail.offset) throw new Error(`${file} shrank`);
      if (now === tail.offset) return [];
      const fd = fs.openSync(file, 'r');
      try {
        if (tail.header === undefined) {
          const start = Buffer.alloc(Math.min(now, 4096));
          fs.readSync(fd, start, 0, start.length, 0);
          const text = start.toString('utf8');
          if (!text.includes('\n')) return [];
          tail.header = text.slice(0, text.indexOf('\n') + 1);
          if (tail.offset === 0) tail.offset = Buffer.byteLength(tail.header);
        }
        const buffer = Buffer.alloc(now - tail.offset);
        fs.readSync(fd, buffer, 0, buffer.length, tail.offset);
        const text = buffer.toString('utf8');
        const complete = text.slice(0, text.lastIndexOf('\n') + 1);
        tail.offset += Buffer.byteLength(complete);
        return complete === '' ? [] : parseCsvRows(complete, file, tail.header);
      } finally {
        fs.closeSync(fd);
      }
    };
    const poll = () => {
      try {
        const events: PipelineEvent[] = [];
        if (steps === 0) steps = readRunInfo(this.folder).steps ?? 0;
        events.push(...readNew(metrics).map((row) => stepFromRow(row, metrics, steps)));
        events.push(...readNew(evals).map((row) => evalFromRow(row, evals)));
        const nowResults = stamp(results);
        if (nowResults !== resultsStamp && nowResults !== '') {
          resultsStamp = nowResults;
          events.push(...resultsEvents(results).ends);
        }
        const nowReport = stamp(report);
        if (nowReport !== reportStamp && nowReport !== '') {
          reportStamp = nowReport;
          events.push({ kind: 'run-end', results: [], interrupted: false });
        }
        if (events.length > 0) listener(events);
      } catch {
        // A file shrank (the run started afresh or was trimmed to resume) or was caught mid-rewrite:
        // begin again from the folder's history.
        for (const file of tails.keys()) tails.set(file, { offset: size(file) });
        resultsStamp = stamp(results);
        reportStamp = stamp(report);
        this.onReset();
      }
    };
    const timer = setInterval(poll, this.pollMs);
    return () => clearInterval(timer);
  }
}
