import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import * as vm from 'vm';
import { EvalEvent, MethodEndEvent, StepEvent } from '../../common/events';
import { MAX_STEPS_PER_SERIES, RunFolderError, readRunHistory, thinSeries } from '../../stages/reporter/report/runHistory';
import { embeddedJson, reportHtml } from '../../stages/reporter/report/reportHtml';
import { writeReport } from '../../stages/reporter/report/writeReport';
import { runCli } from '../helpers/cli';
import { tempFolder } from '../helpers/datasetFixtures';
import { FIXTURE_EVAL_STEPS, writeRunFolder } from '../helpers/runFolderFixture';

describe('report: a run folder read back as events', () => {
  it('turns metrics, evals and results rows into step, eval and method-end events', () => {
    const folder = writeRunFolder(path.join(tempFolder('vitpeft-report-'), 'grid'));
    const history = readRunHistory(folder);
    const steps = history.events.filter((e): e is StepEvent => e.kind === 'step');
    const evals = history.events.filter((e): e is EvalEvent => e.kind === 'eval');
    const ends = history.events.filter((e): e is MethodEndEvent => e.kind === 'method-end');
    expect(steps).to.have.length(2 * 2 * 64);
    expect(steps[0]).to.deep.include({ method: 'full', seed: 0, step: 1, steps: 64, loss: 1 });
    expect(evals).to.have.length(1 + 2 * 2 * FIXTURE_EVAL_STEPS.length);
    expect(evals[0]).to.deep.include({ method: 'pretrained', step: 0, retention: { 10: 91, 20: 90 } });
    expect(evals.find((e) => e.method === 'lora-r4')!.retentionUnplugged).to.deep.equal({ 10: 91, 20: 90 });
    expect(ends.map((e) => `${e.result.method}/${e.result.seed}`)).to.deep.equal(['full/0', 'full/1', 'lora-r4/0', 'lora-r4/1']);
    expect(history.info).to.deep.include({ run: 'grid', knnHeadline: 20, steps: 64 });
    expect(history.info.command).to.equal('vitpeft --backend wasm run /pipelines/grid.json --out ' + path.dirname(folder) + ' --seeds 2 --no-save-models');
    expect(history.info.timings).to.have.length(4);
    expect(history.finished).to.equal(false);
  });

  it(`keeps at most ${MAX_STEPS_PER_SERIES} steps per method and seed, the last one always`, () => {
    const folder = writeRunFolder(path.join(tempFolder('vitpeft-report-'), 'long'), { steps: 2500 });
    const steps = readRunHistory(folder).events.filter((e): e is StepEvent => e.kind === 'step' && e.method === 'full' && e.seed === 1);
    expect(steps.length).to.be.at.most(MAX_STEPS_PER_SERIES);
    expect(steps.length).to.be.above(MAX_STEPS_PER_SERIES / 2);
    expect(steps[steps.length - 1].step).to.equal(2500);
    expect(thinSeries([1, 2, 3, 4, 5], () => 'one', 2)).to.deep.equal([1, 5]);
    expect(thinSeries([1, 2, 3, 4, 5, 6, 7, 8], () => 'one', 3)).to.deep.equal([1, 5, 8]);
  });

  it('reads only whole lines of a file being appended to', () => {
    const folder = writeRunFolder(path.join(tempFolder('vitpeft-report-'), 'grid'), { withoutResults: true });
    fs.appendFileSync(path.join(folder, 'metrics.csv'), 'grid,full,0,65,0,0.1');
    const steps = readRunHistory(folder).events.filter((e) => e.kind === 'step');
    expect(steps).to.have.length(2 * 2 * 64);
  });

  it('refuses a folder that is not a run, and damaged files, naming the file', () => {
    const empty = tempFolder('vitpeft-report-');
    expect(() => readRunHistory(empty)).to.throw(RunFolderError, `${empty}: not a run folder`);
    const folder = writeRunFolder(path.join(tempFolder('vitpeft-report-'), 'grid'));
    fs.appendFileSync(path.join(folder, 'metrics.csv'), 'grid,full,0,65,0,abc,0.1,500\n');
    expect(() => readRunHistory(folder)).to.throw(RunFolderError, `${path.join(folder, 'metrics.csv')}: column 'loss' holds 'abc', expected a number`);
  });
});

describe('report: report.html', () => {
  it('is one self-contained page: the chart libraries inlined, nothing fetched from a network', () => {
    const folder = writeRunFolder(path.join(tempFolder('vitpeft-report-'), 'grid'));
    const html = fs.readFileSync(writeReport(folder), 'utf8');
    expect(html).to.include('vegaEmbed').and.to.include('vegaLite').and.to.include('id="vitpeft-history"');
    expect(html).to.not.match(/<script[^>]+src=/);
    expect(html).to.not.match(/<link[^>]+href="https?:/);
    expect(html).to.include('href="metrics.csv"');
  });

  it('keeps a run name with markup inside its JSON (no element can be closed from the data)', () => {
    const folder = writeRunFolder(path.join(tempFolder('vitpeft-report-'), 'grid'), { name: '</script><script>alert(1)</script>' });
    const history = readRunHistory(folder);
    const html = reportHtml({ history });
    expect(html).to.not.include('<script>alert(1)');
    expect(embeddedJson({ run: '</script>' })).to.equal('{"run":"\\u003c/script>"}');
    const json = /<script type="application\/json" id="vitpeft-history">([^]*?)<\/script>/.exec(html)![1];
    expect(JSON.parse(json).info.run).to.equal('</script><script>alert(1)</script>');
  });

  it('vitpeft merge --out DIR/results.csv writes DIR/report.html of the merged results', () => {
    const base = tempFolder('vitpeft-report-');
    const shards = [writeRunFolder(path.join(base, 'grid-shard1of2')), writeRunFolder(path.join(base, 'grid-shard2of2'))];
    const merged = runCli(['merge', ...shards, '--out', path.join(base, 'merged', 'results.csv')]);
    expect(merged.status, merged.stderr).to.equal(0);
    const history = readRunHistory(path.join(base, 'merged'));
    expect(history.events.filter((e) => e.kind === 'method-end')).to.have.length(8);
    expect(fs.readFileSync(path.join(base, 'merged', 'report.html'), 'utf8')).to.include('id="vitpeft-history"');
  });

  it('vitpeft report writes it; a folder that is not a run or a damaged results.csv is a one-line error naming it', () => {
    const folder = writeRunFolder(path.join(tempFolder('vitpeft-report-'), 'grid'));
    const ok = runCli(['report', folder]);
    expect(ok.status, ok.stderr).to.equal(0);
    expect(fs.existsSync(path.join(folder, 'report.html'))).to.equal(true);

    const empty = tempFolder('vitpeft-report-');
    const notRun = runCli(['report', empty]);
    expect(notRun.status).to.equal(2);
    expect(notRun.stderr.trim().split('\n')).to.have.length(1);
    expect(notRun.stderr).to.include(`${empty}: not a run folder`);

    fs.writeFileSync(path.join(folder, 'results.csv'), 'run,method,seed\ngrid,full,"unterminated\n');
    const damaged = runCli(['report', folder]);
    expect(damaged.status).to.equal(2);
    expect(damaged.stderr.trim().split('\n')).to.have.length(1);
    expect(damaged.stderr).to.include(path.join(folder, 'results.csv'));
  });
});

describe('report page: the run state in the browser', () => {
  /** The page's reducer and derived data (plain browser scripts), evaluated in a fresh context. */
  function pageFunctions(): { emptyState: (h: unknown) => Record<string, unknown>; apply: (state: unknown, event: unknown) => void; summaryRows: (state: unknown) => Array<Record<string, unknown>> } {
    const assets = path.join(__dirname, '..', '..', '..', 'stages', 'reporter', 'report', 'assets');
    const code = ['runState.js', 'derived.js'].map((name) => fs.readFileSync(path.join(assets, name), 'utf8')).join('\n');
    const context = vm.createContext({});
    vm.runInContext(`${code}\nthis.exported = { emptyState, apply, summaryRows };`, context);
    return (context as { exported: ReturnType<typeof pageFunctions> }).exported;
  }

  it('folds a history and an overlapping live tail into the same state as the history alone', () => {
    const history = readRunHistory(writeRunFolder(path.join(tempFolder('vitpeft-report-'), 'grid')));
    const page = pageFunctions();
    const once = page.emptyState(history);
    for (const event of history.events) page.apply(once, event);
    const twice = page.emptyState(history);
    for (const event of [...history.events, ...history.events.slice(-40)]) page.apply(twice, event);
    expect(twice.stepsSeen).to.equal(once.stepsSeen).and.to.equal(256);
    expect(page.summaryRows(twice)).to.deep.equal(page.summaryRows(once));
    const full = page.summaryRows(once).find((row) => row.method === 'full')!;
    expect(full).to.deep.include({ seeds: 2, family: 'full', trainableParams: 27906, status: 'ok' });
    expect(full.newTask).to.deep.include({ mean: 76.5, n: 2 });
  });
});
