// The report page in a real headless browser (Debian's chromium via playwright-core): report.html
// of a small run opened from disk with the network cut, and the live view of a running pipeline.

import { expect } from 'chai';
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import type { Page } from 'playwright-core';
import { lastValueFrom } from 'rxjs';
import { TOKENS } from '../../di/tokens';
import { pipeline } from '../../pipelines/composer';
import { loadPipelineFile } from '../../pipelines/spec';
import type { ReporterOptions } from '../../stages/reporter/stage';
import { HeadlessChromium, launchChromium } from '../../scripts/headlessChromium';
import { REPO_ROOT } from '../helpers/cli';
import { writeReport } from '../../stages/reporter/report/writeReport';
import { tempFolder } from '../helpers/datasetFixtures';
import { pipelineFixture } from '../helpers/pipelineFixtures';
import { writeRunFolder } from '../helpers/runFolderFixture';

/** Console errors, uncaught exceptions and requests that left the allowed origins, as they happen. */
function watch(page: Page, allowed: (url: string) => boolean): { errors: string[]; blocked: string[] } {
  const seen = { errors: [] as string[], blocked: [] as string[] };
  page.on('console', (message) => message.type() === 'error' && seen.errors.push(message.text()));
  page.on('pageerror', (error) => seen.errors.push(error.message));
  void page.route('**/*', (route) => {
    const url = route.request().url();
    if (allowed(url)) return route.continue();
    seen.blocked.push(url);
    return route.abort();
  });
  return seen;
}

/** report.html opened from disk with the network cut, once it has drawn; close the page and go back online after. */
async function openOffline(chromium: HeadlessChromium, report: string): Promise<{ page: Page; seen: { errors: string[]; blocked: string[] } }> {
  await chromium.context.setOffline(true);
  const page = await chromium.context.newPage();
  const seen = watch(page, (url) => url.startsWith('file:') || url.startsWith('data:'));
  await page.goto(`file://${report}`);
  await page.waitForSelector('body[data-rendered]', { timeout: 15_000 });
  return { page, seen };
}

async function markCount(page: Page, selector: string): Promise<number> {
  return page.locator(selector).count();
}

describe('report page in headless Chromium', function () {
  let chromium: HeadlessChromium;

  before(async () => {
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
  });

  it('report.html of a small run opens from disk with the network cut: the table rows and every chart drawn', async () => {
    const fixture = await pipelineFixture({
      methods: [{ method: 'linear' }, { method: 'lora', rank: 2 }],
      train: { steps: 12, batchSize: 16, optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0, warmupSteps: 2, schedule: 'cosine', seed: 0 },
      evaluate: { every: 6, batchSize: 32, knn: { k: [5, 10], temperature: 0.07, headline: 10 } },
      seeds: 2,
    });
    const outDir = path.join(fixture.folder, 'out', 'toy');
    const composed = pipeline();
    const quiet: ReporterOptions = { outDir, interactive: false, out: () => undefined, err: () => undefined, plots: false };
    composed.container.register(TOKENS.reporterOptions, { useValue: quiet });
    await lastValueFrom(composed.run(loadPipelineFile(fixture.file), { outDir, saveModels: false }));
    const report = path.join(outDir, 'report.html');
    expect(fs.existsSync(report), 'the reporter writes report.html at the end of the run').to.equal(true);

    const { page, seen } = await openOffline(chromium, report);
    try {
      const methods = await page.locator('#results tbody tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-method')));
      expect(methods).to.deep.equal(['pretrained', 'linear', 'lora-r2']);
      const linearRow = await page.locator('#results tbody tr[data-method="linear"]').innerText();
      expect(linearRow).to.include('(2 seeds)').and.to.include('±');
      expect(await markCount(page, '#tradeoff .mark-symbol.role-mark path')).to.equal(2);
      // linear's retention, LoRA's retention and LoRA's retention unplugged
      expect(await markCount(page, '#forgetting .mark-line.role-mark path')).to.equal(3);
      expect(await markCount(page, '#newtask .mark-line.role-mark path')).to.equal(2);
      // a smoothed and a raw line per method and seed
      expect(await markCount(page, '#loss .mark-line.role-mark path')).to.equal(8);
      expect(await markCount(page, '#lr .mark-line.role-mark path')).to.equal(4);
      expect(await page.locator('#progress').innerText()).to.equal('finished');
      expect(await page.locator('#command').innerText()).to.match(/^vitpeft (--backend \w+ )?run \S*toy\.json --out \S+ --no-save-models$/);
      // Sorting by a column keeps the pretrained baseline first.
      await page.locator('#results th[data-column="params"]').click();
      const sorted = await page.locator('#results tbody tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-method')));
      expect(sorted).to.deep.equal(['pretrained', 'lora-r2', 'linear']);
      expect(seen.errors, 'console errors').to.deep.equal([]);
      expect(seen.blocked, 'requests to a network').to.deep.equal([]);
    } finally {
      await page.close();
      await chromium.context.setOffline(false);
    }
  });

  it('draws log-spaced evaluations on a log step axis, with mean ± std over seeds in the table', async () => {
    const folder = writeRunFolder(path.join(tempFolder('vitpeft-browser-'), 'grid'));
    const report = writeReport(folder);
    const { page, seen } = await openOffline(chromium, report);
    try {
      expect(await page.locator('#log-steps').isChecked()).to.equal(true);
      expect(await page.locator('#forgetting .role-axis-title').allTextContents()).to.include('training step (log)');
      expect(await page.locator('#results tbody tr[data-method="full"]').innerText()).to.include('(2 seeds)').and.to.include('76.50 ± 0.71');
      // Unchecking the box redraws on a linear axis.
      await page.locator('#log-steps').uncheck();
      await page.waitForFunction(`[...document.querySelectorAll('#forgetting .role-axis-title')].some((t) => t.textContent === 'training step')`, undefined, { timeout: 5000 });
      expect(seen.errors, 'console errors').to.deep.equal([]);
    } finally {
      await page.close();
      await chromium.context.setOffline(false);
    }
  });

  it('the live view of a running pipeline shows the step count rising; the server stops with the run', async () => {
    const fixture = await pipelineFixture({
      methods: [{ method: 'linear' }],
      train: { steps: 200, batchSize: 16, optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0, warmupSteps: 2, schedule: 'cosine', seed: 0 },
      evaluate: { every: 100, batchSize: 32, knn: { k: [5, 10], temperature: 0.07, headline: 10 } },
    });
    const child: ChildProcess = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'vitpeft.js'), '--threads', '1', 'run', fixture.file, '--serve', '0', '--out', path.join(fixture.folder, 'out'), '--no-save-models'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (chunk: string) => {
        stderr += chunk;
        const match = /live view at (http:\/\/\S+)/.exec(stderr);
        if (match) resolve(match[1]);
      });
      void exited.then(() => reject(new Error(`the run ended before printing its live view's address:\n${stderr}`)));
    });
    const page = await chromium.context.newPage();
    const seen = watch(page, (address) => address.startsWith('http://127.0.0.1:') || address.startsWith('data:'));
    try {
      await page.goto(url);
      const stepsSeen = async () => Number(await page.locator('#progress').getAttribute('data-steps-seen'));
      const stepsAbove = (count: number) => `Number(document.getElementById('progress').getAttribute('data-steps-seen')) > ${count}`;
      await page.waitForFunction(stepsAbove(0), undefined, { timeout: 30_000 });
      const first = await stepsSeen();
      await page.waitForFunction(stepsAbove(first), undefined, { timeout: 30_000 });
      expect(await stepsSeen()).to.be.above(first);
      expect(await page.locator('#progress').innerText()).to.match(/live · linear seed 0: step \d+ \/ 200|finished/);
      expect(seen.errors, 'console errors').to.deep.equal([]);
      expect(seen.blocked, 'requests to a network').to.deep.equal([]);
    } finally {
      await page.close();
    }
    expect(await exited, stderr).to.equal(0);
    const refused = await new Promise<boolean>((resolve) => http.get(url, () => resolve(false)).on('error', () => resolve(true)));
    expect(refused, 'the server stopped with the run').to.equal(true);
  });
});
