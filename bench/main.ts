// `npm run bench`: training, evaluation and dataset-transform throughput on the backend in use.
//
// Each case runs in its own child process (this script with --child), so that its peak resident
// memory (process.resourceUsage().maxRSS, which is process-wide and never goes down) belongs to
// that case alone, and no case inherits another's heap. Within a child, warm-up runs are discarded
// and each timed run is reported; the table shows the median and the best, and the median CPU
// time of a run (all threads): on a shared machine, wall time well above CPU time / threads means
// the run waited for cores. The one-minute load average at the start of each case is shown too.
//
//   npm run bench                         the table
//   npm run --silent bench -- --json      one JSON object on stdout (npm prints a banner unless --silent)
//   npm run bench -- --only train.full,eval --runs 3 --threads 1 --out bench.json
//   npm run bench -- --pytorch            then the same cases in PyTorch, and the ratios

import { spawnSync } from 'child_process';
import { Command } from 'commander';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BACKEND_CHOICES, BackendChoice, initBackend, isBackendChoice } from '../di/backend';
import { BenchCase, CASES, caseId } from './cases';
import { CASE_GROUPS } from './measure';
import { runPytorch } from './pytorch';

interface BenchOptions {
  json: boolean;
  runs: number;
  warmup: number;
  only?: string;
  backend: BackendChoice;
  threads?: number;
  out?: string;
  child?: string;
  pytorch: boolean;
}

/** What a child process reports for its case. */
interface CaseReport {
  readonly id: string;
  readonly backend: string;
  /** Threads computing (wasm and cpu backends); absent for tensorflow. */
  readonly threads?: number;
  readonly batch: number;
  readonly seconds: number[];
  readonly images_per_second: number;
  readonly images_per_second_best: number;
  readonly median_ms: number;
  readonly min_ms: number;
  /** Median CPU time of a run, all threads of the process (ms). */
  readonly cpu_median_ms: number;
  /** Peak resident memory of the child process over the whole case (MiB). */
  readonly peak_rss_mib: number;
  /** Peak resident memory once the backend had started, before the case built anything (MiB). */
  readonly startup_rss_mib: number;
  /** One-minute load average when the case started (the machine may be shared). */
  readonly load_at_start: number;
  readonly description: string;
  /** Where the time went (job cases: training, evaluation and baseline seconds). */
  readonly parts?: Readonly<Record<string, number>>;
}

const MIB = 1024 * 1024;

function positiveInteger(name: string, min: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || number < min) throw new Error(`${name}: expected an integer >= ${min}, got '${value}'`);
    return number;
  };
}

function selectCases(only: string | undefined): BenchCase[] {
  if (!only) return [...CASES];
  const wanted = only.split(',').map((part) => part.trim()).filter(Boolean);
  const known = CASES.map(caseId);
  for (const item of wanted) {
    if (!known.includes(item) && !CASES.some((c) => c.group === item)) {
      throw new Error(`--only: unknown case '${item}' (known: ${known.join(', ')}, or a group: ${CASE_GROUPS.join(', ')})`);
    }
  }
  return CASES.filter((c) => wanted.includes(caseId(c)) || wanted.includes(c.group));
}

async function runChild(id: string, options: BenchOptions): Promise<void> {
  const benchCase = CASES.find((c) => caseId(c) === id);
  if (!benchCase) throw new Error(`--child: unknown case '${id}'`);
  const info = await initBackend(options.backend, { threads: options.threads });
  const startupRss = process.resourceUsage().maxRSS * 1024;
  const loadAtStart = os.loadavg()[0];
  const timing = await benchCase.measure(benchCase.fixedRuns?.warmup ?? options.warmup, benchCase.fixedRuns?.runs ?? options.runs);
  const report: CaseReport = {
    id,
    backend: info.description,
    threads: info.threads,
    batch: benchCase.batch,
    seconds: timing.seconds.map((s) => Number(s.toFixed(4))),
    images_per_second: benchCase.batch / timing.medianSeconds,
    images_per_second_best: benchCase.batch / timing.minSeconds,
    median_ms: timing.medianSeconds * 1000,
    min_ms: timing.minSeconds * 1000,
    cpu_median_ms: timing.medianCpuSeconds * 1000,
    peak_rss_mib: (process.resourceUsage().maxRSS * 1024) / MIB,
    startup_rss_mib: startupRss / MIB,
    load_at_start: loadAtStart,
    description: benchCase.description,
    ...(timing.parts ? { parts: timing.parts } : {}),
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** The case's report, or why it failed (its stderr went to ours). */
function runInChild(benchCase: BenchCase, options: BenchOptions): CaseReport | { error: string } {
  const args = [__filename, '--child', caseId(benchCase), '--runs', String(options.runs), '--warmup', String(options.warmup), '--backend', options.backend];
  if (options.threads !== undefined) args.push('--threads', String(options.threads));
  const result = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 * MIB });
  if (result.error) return { error: result.error.message };
  const last = result.stdout.trim().split('\n').pop() ?? '';
  if (result.status !== 0 || !last.startsWith('{')) {
    const why = result.stderr.trim().split('\n').pop() ?? '';
    return { error: `exit status ${result.status}${result.signal ? `, signal ${result.signal}` : ''}: ${why}` };
  }
  return JSON.parse(last) as CaseReport;
}

function gitCommit(): string | undefined {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
  if (head.status !== 0) return undefined;
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
  return `${head.stdout.trim()}${dirty.stdout.trim() ? '+dirty' : ''}`;
}

function formatRow(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
}

async function runAll(options: BenchOptions): Promise<void> {
  const cases = selectCases(options.only);
  const commit = gitCommit();
  const log = (line: string) => {
    if (!options.json) process.stdout.write(`${line}\n`);
  };
  log(`vitpeft bench: commit ${commit ?? 'unknown'}, node ${process.version}, ${os.cpus().length} cores, ${options.warmup} warm-up + ${options.runs} timed runs per case`);
  const widths = [8, 24, 6, 12, 11, 10, 9, 10, 9, 5];
  log(formatRow(['group', 'case', 'batch', 'img/s median', 'img/s best', 'ms median', 'ms min', 'cpu ms med', 'peak MiB', 'load'], widths));
  const reports: CaseReport[] = [];
  const failures: Record<string, string> = {};
  for (const benchCase of cases) {
    const report = runInChild(benchCase, options);
    if ('error' in report) {
      failures[caseId(benchCase)] = report.error;
      log(formatRow([benchCase.group, benchCase.name, String(benchCase.batch), `failed: ${report.error}`], widths));
      process.exitCode = 1;
      continue;
    }
    reports.push(report);
    log(
      formatRow(
        [
          benchCase.group,
          benchCase.name,
          String(report.batch),
          report.images_per_second.toFixed(2),
          report.images_per_second_best.toFixed(2),
          report.median_ms.toFixed(0),
          report.min_ms.toFixed(0),
          report.cpu_median_ms.toFixed(0),
          report.peak_rss_mib.toFixed(0),
          report.load_at_start.toFixed(1),
        ],
        widths,
      ),
    );
  }
  const backend = reports[0]?.backend ?? 'none';
  log(`backend: ${backend}; cpu ms: CPU time of a run, all threads; peak MiB: peak resident memory of the case's own process (startup included)`);
  const jobs = reports.filter((report) => report.parts && report.id.startsWith('job.'));
  if (jobs.length > 0) {
    const splitWidths = [24, 0, 7, 11, 14, 11, 17];
    log('');
    log(formatRow(['job (one method)', '', 'wall s', 'training s', 'evaluations s', 'baseline s', 'evaluation share'], splitWidths));
    for (const report of jobs) {
      const parts = report.parts!;
      const seconds = (key: string) => (parts[key] ?? NaN).toFixed(1);
      const share = `${Math.round(100 * (parts.evaluation_share_of_job ?? NaN))}%`;
      log(formatRow([report.id, '', (report.median_ms / 1000).toFixed(1), seconds('training_seconds'), seconds('evaluation_seconds'), seconds('baseline_seconds'), share], splitWidths));
    }
    log('evaluation share: evaluations / (wall - baseline), the job without the pretrained model\'s own evaluation');
  }
  const summary: Record<string, unknown> = {
    commit,
    node: process.version,
    cores: os.cpus().length,
    backend,
    threads: reports[0]?.threads,
    warmup: options.warmup,
    runs: options.runs,
    ...Object.fromEntries(CASE_GROUPS.map((group) => [group, {}])),
    ...(Object.keys(failures).length > 0 ? { failures } : {}),
  };
  for (const report of reports) {
    const [group, name] = [report.id.slice(0, report.id.indexOf('.')), report.id.slice(report.id.indexOf('.') + 1)];
    const { id: _id, backend: _backend, threads: _threads, ...rest } = report;
    (summary[group] as Record<string, unknown>)[name] = rest;
  }
  if (options.pytorch) {
    const pytorch = runPytorch(reports.map((report) => report.id), options.runs, options.warmup);
    summary.pytorch = pytorch;
    if ('error' in pytorch) {
      log(`pytorch: ${pytorch.error}`);
      process.exitCode = 1;
    } else {
      log('');
      log(`same cases in PyTorch ${pytorch.torch} (1 OpenMP + 2 OpenBLAS threads, best of 1 or 2 intra-op threads), run after vitpeft's:`);
      log(formatRow(['case', '', 'vitpeft img/s', 'PyTorch img/s', 'ratio', 'torch thr'], [24, 0, 13, 13, 7, 9]));
      for (const report of reports) {
        const theirs = pytorch.cases[report.id];
        if (!theirs) continue;
        const ratio = report.images_per_second / theirs.images_per_second;
        log(formatRow([report.id, '', report.images_per_second.toFixed(2), theirs.images_per_second.toFixed(2), ratio.toFixed(2), String(theirs.threads)], [24, 0, 13, 13, 7, 9]));
      }
    }
  }
  const json = JSON.stringify(summary);
  if (options.out) fs.writeFileSync(options.out, `${JSON.stringify(summary, null, 2)}\n`);
  if (options.json) process.stdout.write(`${json}\n`);
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('bench')
    .description('training, evaluation and data-transform throughput of vitpeft on this machine')
    .option('--json', 'print one JSON object instead of the table', false)
    .option('--runs <n>', 'timed runs per case', positiveInteger('--runs', 1), 5)
    .option('--warmup <n>', 'untimed runs before them', positiveInteger('--warmup', 0), 2)
    .option('--only <cases>', `comma-separated cases or groups (${CASES.map(caseId).join(', ')})`)
    .option('--backend <name>', `compute backend: ${BACKEND_CHOICES.join(', ')}`, (value: string) => {
      if (!isBackendChoice(value)) throw new Error(`--backend: expected one of ${BACKEND_CHOICES.join(', ')}, got '${value}'`);
      return value;
    }, 'auto')
    .option('--threads <n>', 'wasm threads (default: $VITPEFT_THREADS, else one per CPU core)', positiveInteger('--threads', 1))
    .option('--out <file>', 'also write the JSON (indented) to this file')
    .option('--pytorch', 'then run the same cases in PyTorch (scripts/bench_pytorch.py, Debian python3-torch) and print the ratios', false)
    .addOption(new Command().createOption('--child <case>', 'internal: run one case in this process').hideHelp());
  program.parse(argv);
  const options = program.opts<BenchOptions>();
  if (options.child) await runChild(options.child, options);
  else await runAll(options);
}

main(process.argv).then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    process.stderr.write(`bench: ${(error as Error)?.message ?? String(error)}\n`);
    process.exit(1);
  },
);
