// The report page as one HTML string that needs no network: vega, vega-lite and vega-embed's
// browser bundles, the page's stylesheet and script are inlined; report.html also carries the
// run's history as JSON. The live view is the same page told where its event stream is.

import * as fs from 'fs';
import * as path from 'path';
import { RunHistory } from './runHistory';

/** Where the live page finds its stream, the run list and the run folder's files (relative URLs). */
export interface LivePage {
  readonly run: string;
  readonly events: string;
  readonly runs: string;
}

/** The page's own script and stylesheet: beside this file's source (the package ships it). */
function assetsFolder(): string {
  const candidates = [path.join(__dirname, 'assets'), path.resolve(__dirname, '..', '..', '..', '..', 'stages', 'reporter', 'report', 'assets')];
  const found = candidates.find((folder) => fs.existsSync(path.join(folder, 'page.js')));
  if (!found) throw new Error(`the report page's script (page.js) is missing; looked in ${candidates.join(' and ')}`);
  return found;
}

/** A package's browser bundle, found beside the entry point that Node resolves for it. */
function browserBundle(name: string, file: string): string {
  const bundle = path.join(path.dirname(require.resolve(name)), file);
  if (!fs.existsSync(bundle)) throw new Error(`${bundle}: ${name}'s browser bundle is missing (npm ci installs it)`);
  return fs.readFileSync(bundle, 'utf8');
}

const PAGE_SCRIPTS = ['runState.js', 'derived.js', 'charts.js', 'table.js', 'page.js'];

let inlined: { scripts: string; style: string; page: string } | undefined;

function assets(): { scripts: string; style: string; page: string } {
  if (inlined) return inlined;
  const folder = assetsFolder();
  const bundles = [browserBundle('vega', 'vega.min.js'), browserBundle('vega-lite', 'vega-lite.min.js'), browserBundle('vega-embed', 'vega-embed.min.js')];
  inlined = {
    scripts: bundles.map((code) => `<script>${scriptText(code)}</script>`).join('\n'),
    style: fs.readFileSync(path.join(folder, 'page.css'), 'utf8'),
    // One function scope for the page's files, in dependency order, page.js (which starts it) last.
    page: scriptText(`(function () {\n'use strict';\n${PAGE_SCRIPTS.map((name) => fs.readFileSync(path.join(folder, name), 'utf8')).join('\n')}})();\n`),
  };
  return inlined;
}

/** Text that cannot end the script element it sits in. */
function scriptText(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** JSON for a script element: '<' escaped so that no string in it can close the element. */
export function embeddedJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const FILES = ['results.csv', 'evals.csv', 'metrics.csv', 'timings.csv', 'summary.csv', 'spec.json', 'run.json', 'tradeoff.svg', 'forgetting.svg'];

/** report.html of a finished run (`history`), or the live page of a run whose history comes from `live.events`. */
export function reportHtml(page: { history: RunHistory } | { live: LivePage; files: readonly string[] }): string {
  const { scripts, style, page: script } = assets();
  const run = 'history' in page ? page.history.info.run : page.live.run;
  const files = 'history' in page ? FILES.filter((name) => fs.existsSync(path.join(page.history.info.folder, name))) : page.files;
  const fileBase = 'history' in page ? '' : 'files/';
  const data =
    'history' in page
      ? `<script type="application/json" id="vitpeft-history">${embeddedJson(page.history)}</script>`
      : `<script>window.VITPEFT_LIVE = ${embeddedJson(page.live)};</script>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="vitpeft">
<link rel="icon" href="data:,">
<title>${escapeHtml(run)} — vitpeft</title>
<style>${style}</style>
</head>
<body>
<header>
  <h1 id="run-name">${escapeHtml(run)}</h1><span id="progress" class="badge" data-steps-seen="0">loading</span>
  <p id="run-description"></p>
  <nav id="runs" hidden></nav>
</header>
<main>
  <section id="table-section">
    <h2>Results</h2>
    <table id="results"></table>
    <p class="note">New task: the head's top-1 accuracy on the new task's test split (last evaluation; "best" is the best over evaluations). Retention: weighted k-NN accuracy on the pretraining domain. Unplugged: the same with adapters removed or added blocks bypassed. With several seeds: mean ± sample std over the seeds that finished. Click a column to sort.</p>
  </section>
  <div class="grid">
    <section id="tradeoff-section" hidden><h2>Trade-off: new task against retention</h2><div id="tradeoff" class="chart"></div><p class="note">Size: trainable parameters. Click a family in the legend to pick it out; drag to pan, scroll to zoom, double-click to reset.</p></section>
    <section id="forgetting-section" hidden><h2>Forgetting curves</h2><div class="controls"><label><input type="checkbox" id="log-steps"> log step axis</label></div><div id="forgetting" class="chart"></div></section>
    <section id="newtask-section" hidden><h2>New-task accuracy</h2><div id="newtask" class="chart"></div></section>
    <section id="loss-section" hidden><h2>Training loss</h2><div class="controls"><label>smoothing <input type="range" id="smoothing" min="0" max="0.99" step="0.01" value="0.6"> <span id="smoothing-value">0.6</span></label><label><input type="checkbox" id="log-loss"> log loss axis</label></div><div id="loss" class="chart"></div></section>
    <section id="lr-section" hidden><h2>Learning rate</h2><div id="lr" class="chart"></div></section>
  </div>
  <section>
    <h2>Run</h2>
    <dl id="run-details"></dl>
    <h2 style="margin-top:14px">Reproduce</h2>
    <code id="command"></code>
    <div id="timings-section" hidden><h2 style="margin-top:14px">Timings</h2><table id="timings"></table></div>
    <h2 style="margin-top:14px">Files</h2>
    <p>${files.map((name) => `<a href="${fileBase}${encodeURIComponent(name)}">${escapeHtml(name)}</a>`).join(' · ')}</p>
    <details><summary>spec.json</summary><pre id="spec"></pre></details>
  </section>
</main>
${data}
${scripts}
<script>${script}</script>
</body>
</html>
`;
}
