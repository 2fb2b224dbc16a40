// The paper-style table: one row per method (pretrained baseline first) with trainable
// parameters, new-task accuracy, retention and their mean; with several seeds, mean ± std.

import { BASELINE, MethodResult } from '../../common/events';

export interface SummaryRow {
  readonly method: string;
  readonly seeds: number;
  readonly trainableParams: number;
  readonly status: string;
  readonly newTask?: Stat;
  readonly newTaskBest?: Stat;
  readonly retention?: Stat;
  readonly retentionUnplugged?: Stat;
  readonly retentionLinear?: Stat;
  readonly frozenHead?: Stat;
  readonly mean?: Stat;
}

export interface Stat {
  readonly mean: number;
  /** Sample standard deviation over seeds (0 for one seed). */
  readonly std: number;
  readonly n: number;
}

export function stat(values: ReadonlyArray<number | undefined>): Stat | undefined {
  const present = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (present.length === 0) return undefined;
  const mean = present.reduce((a, b) => a + b, 0) / present.length;
  const variance = present.length > 1 ? present.reduce((a, b) => a + (b - mean) ** 2, 0) / (present.length - 1) : 0;
  return { mean, std: Math.sqrt(variance), n: present.length };
}

/** Groups per-seed results by method (first-seen order) into mean ± std rows. */
export function summarize(results: readonly MethodResult[]): SummaryRow[] {
  const groups = new Map<string, MethodResult[]>();
  for (const result of results) groups.set(result.method, [...(groups.get(result.method) ?? []), result]);
  return [...groups.entries()].map(([method, group]) => {
    const ok = group.filter((r) => r.status === 'ok');
    const statuses = [...new Set(group.map((r) => r.status))];
    return {
      method,
      seeds: group.length,
      trainableParams: group[0].trainableParams,
      status: statuses.length === 1 ? statuses[0] : statuses.map((s) => `${group.filter((r) => r.status === s).length} ${s}`).join(', '),
      newTask: stat(ok.map((r) => r.newTaskAccuracy)),
      newTaskBest: stat(ok.map((r) => r.newTaskBest)),
      retention: stat(ok.map((r) => r.retentionAccuracy)),
      retentionUnplugged: stat(ok.map((r) => r.retentionUnplugged)),
      retentionLinear: stat(ok.map((r) => r.retentionLinear)),
      frozenHead: stat(ok.map((r) => r.frozenHeadAccuracy)),
      mean: stat(ok.map((r) => r.meanAccuracy)),
    };
  });
}

function formatStat(value: Stat | undefined): string {
  if (!value) return '—';
  return value.n > 1 ? `${value.mean.toFixed(2)} ± ${value.std.toFixed(2)}` : value.mean.toFixed(2);
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export interface TableInput {
  readonly title: string;
  readonly knnHeadline: number;
  readonly baselineRetention?: number;
  readonly baselineFrozenHead?: number;
  readonly baselineRetentionLinear?: number;
  readonly rows: readonly SummaryRow[];
}

/** A plain-text table; columns that are empty for every row are left out. */
export function formatTable(input: TableInput): string {
  const headers = ['method', 'trainable params', 'new task', `retention (k-NN@${input.knnHeadline})`, 'mean', 'unplugged', 'linear probe', 'frozen head', 'status'];
  const body: string[][] = [];
  body.push([
    BASELINE,
    '0',
    '—',
    input.baselineRetention !== undefined ? input.baselineRetention.toFixed(2) : '—',
    '—',
    '—',
    input.baselineRetentionLinear !== undefined ? input.baselineRetentionLinear.toFixed(2) : '—',
    input.baselineFrozenHead !== undefined ? input.baselineFrozenHead.toFixed(2) : '—',
    'ok',
  ]);
  for (const row of input.rows) {
    body.push([
      row.seeds > 1 ? `${row.method} (${row.seeds} seeds)` : row.method,
      formatCount(row.trainableParams),
      formatStat(row.newTask),
      formatStat(row.retention),
      formatStat(row.mean),
      formatStat(row.retentionUnplugged),
      formatStat(row.retentionLinear),
      formatStat(row.frozenHead),
      row.status,
    ]);
  }
  const status = headers.length - 1;
  const keep = headers.map((_, column) => column < 5 || body.some((row) => row[column] !== '—' && !(column === status && row[column] === 'ok')));
  const columns = headers.map((header, column) => [header, ...body.map((row) => row[column])]).filter((_, column) => keep[column]);
  const widths = columns.map((column) => Math.max(...column.map((cell) => cell.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const rows = [line(columns.map((c) => c[0])), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (let r = 1; r <= body.length; r++) rows.push(line(columns.map((c) => c[r])));
  return `${input.title}\n${rows.join('\n')}\n`;
}
