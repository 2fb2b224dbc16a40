// The report page's entry point (report.html and the live view): embeds the charts, renders the
// page from the run's state (runState.js, derived.js, charts.js, table.js are inlined before it,
// in one function scope), and loads the state from the history that report.html carries or, live,
// from the server's event stream: the history, then the tail. Plain browser JavaScript, no build
// step; vega, vega-lite and vega-embed are inlined before it.
/* global vegaEmbed */

/** Live: the page is redrawn at most this often (ms). */
var LIVE_RENDER_MS = 700;

var charts = {};

function embedded(id, spec, datasets) {
  var signature = JSON.stringify(spec);
  var existing = charts[id];
  if (existing && existing.signature === signature) {
    existing.pending = datasets;
    if (!existing.view) return existing.ready;
    return update(existing);
  }
  if (existing && existing.view) existing.view.finalize();
  var entry = { signature: signature, view: null, pending: datasets };
  charts[id] = entry;
  var host = document.getElementById(id);
  // The first data go into the spec itself (named datasets), so the first render has them.
  var withData = Object.assign({}, spec, { datasets: datasets });
  entry.ready = vegaEmbed(host, withData, { renderer: 'svg', actions: { export: true, source: false, compiled: false, editor: false }, tooltip: { theme: 'light' } })
    .then(function (result) {
      if (charts[id] !== entry) { result.view.finalize(); return; }
      entry.view = result.view;
      return entry.pending === datasets ? undefined : update(entry);
    })
    .catch(function (error) { host.textContent = 'chart failed: ' + error.message; console.error(error); });
  return entry.ready;
}

function update(entry) {
  var datasets = entry.pending;
  Object.keys(datasets).forEach(function (name) {
    try {
      entry.view.data(name, datasets[name]);
    } catch (error) {
      // A spec that does not use a dataset has no such data source.
    }
  });
  return entry.view.runAsync();
}

function setSection(id, visible) {
  document.getElementById(id).hidden = !visible;
}

function renderCharts(state) {
  var rows = summaryRows(state);
  var smoothing = Number(document.getElementById('smoothing').value);
  var logSteps = document.getElementById('log-steps');
  var curvePoints = curves(state);
  if (!logSteps.dataset.touched) logSteps.checked = logSpaced(curvePoints);
  var log = logSteps.checked;
  var logLoss = document.getElementById('log-loss').checked;
  var baseline = state.baseline.retention === undefined ? [] : [{ retention: state.baseline.retention }];
  // The trade-off is of finished methods: a method still training has no final numbers yet.
  var points = rows.filter(function (r) { return !r.provisional && r.newTask && r.retention; }).map(function (r) {
    return {
      method: r.method, family: r.family, newTask: r.newTask.mean, retention: r.retention.mean, trainableParams: r.trainableParams,
      newTaskText: format(r.newTask), retentionText: format(r.retention), meanText: format(r.mean), seeds: r.seeds, status: r.status,
    };
  });
  var training = trainingPoints(state, smoothing);
  var headline = state.info.knnHeadline;
  var colours = palette(methodOrder(state));
  var hasUnplugged = curvePoints.some(function (p) { return p.measure === 'retention, unplugged'; });
  var work = [];
  setSection('tradeoff-section', points.length > 0);
  if (points.length > 0) work.push(embedded('tradeoff', tradeoffSpec(headline, colours), { points: points, baseline: baseline }));
  setSection('forgetting-section', curvePoints.length > 0);
  setSection('newtask-section', curvePoints.some(function (p) { return p.measure === 'new task'; }));
  if (curvePoints.length > 0) {
    var measures = hasUnplugged ? ['retention', 'retention, unplugged'] : ['retention'];
    work.push(embedded('forgetting', curveSpec(measures, 'retention: k-NN@' + headline + ' (%)', log, true, colours), { curves: curvePoints, baseline: baseline }));
    work.push(embedded('newtask', curveSpec(['new task'], 'new-task accuracy (%)', log, false, colours), { curves: curvePoints, baseline: baseline }));
  }
  setSection('loss-section', training.length > 0);
  setSection('lr-section', training.length > 0);
  if (training.length > 0) {
    work.push(embedded('loss', trainingSpec('loss', 'loss' + (smoothing > 0 ? ' (smoothed ' + smoothing + ')' : ''), false, logLoss, colours), { training: training }));
    work.push(embedded('lr', trainingSpec('lr', 'learning rate', false, false, colours), { training: training }));
  }
  renderTable(state, rows);
  return Promise.all(work);
}

function seconds(value) {
  if (!isFinite(value)) return '—';
  if (value < 120) return value.toFixed(1) + ' s';
  return (value / 60).toFixed(1) + ' min';
}

function renderInfo(state) {
  var info = state.info;
  document.title = info.run + ' — vitpeft';
  document.getElementById('run-name').textContent = info.run;
  document.getElementById('run-description').textContent = info.description || '';
  var details = [
    ['folder', info.folder], ['model', info.model], ['backend', info.backend],
    ['retention metric', 'weighted k-NN, k ∈ {' + (info.knnK || []).join(', ') + '}, reported at k = ' + info.knnHeadline],
    ['steps per method', info.steps], ['evaluated every', info.evaluateEvery ? info.evaluateEvery + ' steps' : undefined],
  ];
  Object.keys(info.data || {}).forEach(function (name) { details.push(['data: ' + name, info.data[name]]); });
  var total = (info.timings || []).reduce(function (a, t) { return a + (isFinite(t.seconds) ? t.seconds : 0); }, 0);
  if ((info.timings || []).length > 0) details.push(['training time', seconds(total) + ' over ' + info.timings.length + ' job(s)']);
  var list = document.getElementById('run-details');
  list.replaceChildren.apply(list, details.filter(function (d) { return d[1] !== undefined && d[1] !== null && d[1] !== ''; }).map(function (d) {
    return element('div', {}, [element('dt', { text: d[0] }), element('dd', { text: String(d[1]) })]);
  }));
  document.getElementById('command').textContent = info.command || '(run.json not found: the command is unknown)';
  var timings = document.getElementById('timings');
  timings.replaceChildren(
    element('thead', {}, [element('tr', {}, ['method', 'seed', 'steps', 'status', 'time'].map(function (t) { return element('th', { text: t }); }))]),
    element('tbody', {}, (info.timings || []).map(function (t) {
      return element('tr', {}, [t.method, String(t.seed), String(t.steps), t.status, seconds(t.seconds)].map(function (t2) { return element('td', { text: t2 }); }));
    })),
  );
  document.getElementById('timings-section').hidden = (info.timings || []).length === 0;
  document.getElementById('spec').textContent = info.spec ? JSON.stringify(info.spec, null, 2) : '(no spec.json)';
}

function renderProgress(state, live) {
  var progress = document.getElementById('progress');
  progress.setAttribute('data-steps-seen', String(state.stepsSeen));
  var current = state.current;
  var text;
  var unfinished = summaryRows(state).filter(function (r) { return r.provisional; }).length;
  if (state.finished) text = state.interrupted ? 'interrupted' : unfinished > 0 ? 'partial: ' + unfinished + ' method(s) without results' : 'finished';
  else if (current) text = (live ? 'live · ' : 'partial · ') + current.method + ' seed ' + current.seed + ': step ' + current.step + (current.steps ? ' / ' + current.steps : '');
  else text = live ? 'live · waiting for the run' : 'partial';
  if (live && state.jobs.length > 0) {
    var done = state.results.size;
    text += ' · ' + done + ' of ' + state.jobs.length + ' jobs done';
  }
  progress.textContent = text;
  progress.className = 'badge ' + (state.finished ? 'finished' : live ? 'live' : 'partial');
}

// ---- start ---------------------------------------------------------------------------------

var state = null;
var live = window.VITPEFT_LIVE || null;
var renderTimer = null;
var lastRender = 0;

function render() {
  renderTimer = null;
  lastRender = Date.now();
  renderInfo(state);
  renderProgress(state, !!live);
  return renderCharts(state).then(function () { document.body.setAttribute('data-rendered', String(lastRender)); });
}

function scheduleRender() {
  renderProgress(state, !!live);
  if (renderTimer !== null) return;
  renderTimer = setTimeout(render, Math.max(0, LIVE_RENDER_MS - (Date.now() - lastRender)));
}

function load(history) {
  state = emptyState(history);
  history.events.forEach(function (event) { apply(state, event); });
}

document.getElementById('smoothing').addEventListener('input', function (e) {
  document.getElementById('smoothing-value').textContent = e.target.value;
  if (state) scheduleRender();
});
['log-steps', 'log-loss'].forEach(function (id) {
  document.getElementById(id).addEventListener('change', function (e) { e.target.dataset.touched = '1'; if (state) render(); });
});

if (!live) {
  load(JSON.parse(document.getElementById('vitpeft-history').textContent));
  render();
  return;
}

var nav = document.getElementById('runs');
fetch(live.runs).then(function (response) { return response.json(); }).then(function (runs) {
  nav.replaceChildren.apply(nav, runs.map(function (run) {
    var link = element('a', { href: run.href, text: run.name + (run.live ? ' (live)' : '') });
    if (run.name === live.run) link.setAttribute('aria-current', 'page');
    return link;
  }));
  nav.hidden = runs.length < 2;
}).catch(function () { nav.hidden = true; });

var source = new EventSource(live.events);
source.addEventListener('history', function (message) {
  load(JSON.parse(message.data));
  render();
});
source.addEventListener('events', function (message) {
  if (!state) return;
  JSON.parse(message.data).forEach(function (event) { apply(state, event); });
  scheduleRender();
});
source.addEventListener('failure', function (message) {
  var progress = document.getElementById('progress');
  progress.textContent = 'cannot read the run: ' + JSON.parse(message.data).message;
  progress.className = 'badge partial';
});
source.onerror = function () {
  var progress = document.getElementById('progress');
  if (state && state.finished) { source.close(); return; }
  progress.textContent = 'disconnected · retrying';
  progress.className = 'badge partial';
};
