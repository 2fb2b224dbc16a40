// The report page (report.html and the live view): a reducer that folds vitpeft's pipeline
// events into the run's state, and a renderer that draws the table and the Vega-Lite charts from
// that state. report.html carries the run's history in a JSON script element; the live view gets
// the same history from the server's event stream, then the live tail. Plain browser JavaScript
// (no build step); vega, vega-lite and vega-embed are inlined before it.
/* global vegaEmbed */
(function () {
  'use strict';

  var BASELINE = 'pretrained';
  var MAX_POINTS = 1000;
  var LIVE_RENDER_MS = 700;

  function key() {
    return Array.prototype.join.call(arguments, '\u0000');
  }

  function emptyState(history) {
    return {
      info: Object.assign({}, history.info),
      finished: !!history.finished,
      interrupted: !!history.interrupted,
      jobs: [],
      baseline: {},
      steps: new Map(),
      evals: new Map(),
      results: new Map(),
      current: null,
      stepsSeen: 0,
    };
  }

  // Keeps every other point (and the last) once a series doubles its limit: bounded memory while live.
  function thin(series) {
    var kept = series.filter(function (_, index) { return index % 2 === 0 || index === series.length - 1; });
    series.length = 0;
    Array.prototype.push.apply(series, kept);
  }

  function apply(state, event) {
    switch (event.kind) {
      case 'run-start':
        state.info.run = event.run;
        state.info.backend = event.backend;
        state.info.knnK = event.knnK;
        state.info.knnHeadline = event.knnHeadline;
        state.jobs = event.jobs;
        state.finished = false;
        break;
      case 'step': {
        var seriesKey = key(event.method, event.seed);
        var series = state.steps.get(seriesKey);
        if (!series) state.steps.set(seriesKey, (series = []));
        // A resumed job repeats steps after its checkpoint: the later values replace the earlier.
        while (series.length > 0 && series[series.length - 1].step >= event.step) series.pop();
        series.push({ step: event.step, loss: event.loss, lr: event.lr, epoch: event.epoch, imagesPerSecond: event.imagesPerSecond });
        if (series.length > 2 * MAX_POINTS) thin(series);
        state.current = { method: event.method, seed: event.seed, step: event.step, steps: event.steps };
        state.stepsSeen += 1;
        break;
      }
      case 'method-start':
        state.current = { method: event.method, seed: event.seed, step: event.fromStep, steps: event.steps };
        break;
      case 'eval':
        state.evals.set(key(event.method, event.seed, event.step), event);
        if (event.method === BASELINE) {
          var headline = (event.retention || {})[state.info.knnHeadline];
          if (headline !== undefined && headline !== null) state.baseline.retention = headline;
          if (event.frozenHeadAccuracy !== undefined) state.baseline.frozenHead = event.frozenHeadAccuracy;
        }
        break;
      case 'method-end':
        state.results.set(key(event.result.method, event.result.seed), event.result);
        break;
      case 'run-end':
        state.finished = true;
        state.interrupted = event.interrupted;
        state.current = null;
        if (event.baselineRetention !== undefined) state.baseline.retention = event.baselineRetention;
        if (event.baselineFrozenHead !== undefined) state.baseline.frozenHead = event.baselineFrozenHead;
        break;
      default:
        break;
    }
  }

  // ---- derived data ----------------------------------------------------------------------

  function family(method) {
    var name = method.replace(/@.*$/, '');
    if (/^lora/.test(name)) return 'LoRA';
    if (/^block/.test(name)) return 'block expansion';
    if (/^top\d/.test(name)) return 'top-k blocks';
    if (name === 'full') return 'full';
    if (name === 'linear') return 'linear';
    if (name === BASELINE) return BASELINE;
    return name;
  }

  function stat(values) {
    var present = values.filter(function (v) { return typeof v === 'number' && isFinite(v); });
    if (present.length === 0) return undefined;
    var mean = present.reduce(function (a, b) { return a + b; }, 0) / present.length;
    var variance = present.length > 1 ? present.reduce(function (a, b) { return a + (b - mean) * (b - mean); }, 0) / (present.length - 1) : 0;
    return { mean: mean, std: Math.sqrt(variance), n: present.length };
  }

  function methodOrder(state) {
    var order = [];
    function see(method) { if (method !== BASELINE && order.indexOf(method) < 0) order.push(method); }
    state.jobs.forEach(function (job) { see(job.method); });
    state.results.forEach(function (result) { see(result.method); });
    state.steps.forEach(function (_, seriesKey) { see(seriesKey.split('\u0000')[0]); });
    state.evals.forEach(function (event) { see(event.method); });
    return order;
  }

  function latestEvals(state, method) {
    var latest = new Map();
    state.evals.forEach(function (event) {
      if (event.method !== method) return;
      var previous = latest.get(event.seed);
      if (!previous || previous.step <= event.step) latest.set(event.seed, event);
    });
    return Array.from(latest.values());
  }

  /** One row per method: mean ± std over its finished seeds; a method still training shows its latest evaluation. */
  function summaryRows(state) {
    var headline = state.info.knnHeadline;
    return methodOrder(state).map(function (method) {
      var results = [];
      state.results.forEach(function (result) { if (result.method === method) results.push(result); });
      var ok = results.filter(function (r) { return r.status === 'ok'; });
      if (results.length > 0) {
        var statuses = Array.from(new Set(results.map(function (r) { return r.status; })));
        var field = function (name) { return stat(ok.map(function (r) { return r[name]; })); };
        return {
          method: method, family: family(method), seeds: results.length, trainableParams: results[0].trainableParams,
          status: statuses.length === 1 ? statuses[0] : statuses.map(function (s) { return results.filter(function (r) { return r.status === s; }).length + ' ' + s; }).join(', '),
          newTask: field('newTaskAccuracy'), newTaskBest: field('newTaskBest'), retention: field('retentionAccuracy'),
          retentionUnplugged: field('retentionUnplugged'), frozenHead: field('frozenHeadAccuracy'), mean: field('meanAccuracy'),
          note: results.map(function (r) { return r.note; }).filter(Boolean).join('; '),
          provisional: false,
        };
      }
      var evals = latestEvals(state, method);
      var pick = function (f) { return stat(evals.map(f)); };
      var running = state.current && state.current.method === method && !state.finished;
      return {
        method: method, family: family(method), seeds: Math.max(1, evals.length), trainableParams: undefined,
        status: running ? 'training' : state.finished ? 'incomplete' : 'pending',
        newTask: pick(function (e) { return e.newTaskAccuracy; }),
        retention: pick(function (e) { return (e.retention || {})[headline]; }),
        retentionUnplugged: pick(function (e) { return (e.retentionUnplugged || {})[headline]; }),
        frozenHead: pick(function (e) { return e.frozenHeadAccuracy; }),
        provisional: true,
      };
    });
  }

  /** Evaluation curves averaged over seeds: one point per method, step and kind. */
  function curves(state) {
    var headline = state.info.knnHeadline;
    var groups = new Map();
    function add(method, step, measure, value) {
      if (typeof value !== 'number' || !isFinite(value)) return;
      var groupKey = key(method, step, measure);
      var group = groups.get(groupKey);
      if (!group) groups.set(groupKey, (group = { method: method, family: family(method), step: step, measure: measure, values: [] }));
      group.values.push(value);
    }
    state.evals.forEach(function (event) {
      if (event.method === BASELINE) return;
      add(event.method, event.step, 'retention', (event.retention || {})[headline]);
      add(event.method, event.step, 'retention, unplugged', (event.retentionUnplugged || {})[headline]);
      add(event.method, event.step, 'new task', event.newTaskAccuracy);
    });
    var points = [];
    groups.forEach(function (group) {
      var s = stat(group.values);
      points.push({ method: group.method, family: group.family, step: group.step, measure: group.measure, accuracy: s.mean, std: s.std, seeds: s.n });
    });
    // The pretrained model is every method's starting point (step 0) when a method has no evaluation there.
    if (state.baseline.retention !== undefined) {
      methodOrder(state).forEach(function (method) {
        var hasStart = points.some(function (p) { return p.method === method && p.step === 0 && p.measure === 'retention'; });
        var hasAny = points.some(function (p) { return p.method === method && p.measure === 'retention'; });
        if (hasAny && !hasStart) points.push({ method: method, family: family(method), step: 0, measure: 'retention', accuracy: state.baseline.retention, std: 0, seeds: 1 });
      });
    }
    points.sort(function (a, b) { return a.step - b.step; });
    return points;
  }

  /** Evaluation steps that grow geometrically (each gap at least 1.5 times the one before) ask for a log axis. */
  function logSpaced(points) {
    var steps = Array.from(new Set(points.map(function (p) { return p.step; }))).filter(function (s) { return s > 0; }).sort(function (a, b) { return a - b; });
    if (steps.length < 4) return false;
    var growing = 0;
    for (var i = 2; i < steps.length; i++) if (steps[i] - steps[i - 1] >= 1.5 * (steps[i - 1] - steps[i - 2])) growing++;
    return growing >= 0.75 * (steps.length - 2);
  }

  // TensorBoard's smoothing: an exponential moving average, debiased for its first points.
  function smooth(values, weight) {
    var last = 0;
    var count = 0;
    return values.map(function (v) {
      if (typeof v !== 'number' || !isFinite(v)) return v;
      last = last * weight + (1 - weight) * v;
      count++;
      return weight === 0 ? v : last / (1 - Math.pow(weight, count));
    });
  }

  function downsample(series, limit) {
    if (series.length <= limit) return series;
    var stride = Math.ceil(series.length / limit);
    return series.filter(function (_, index) { return index % stride === 0 || index === series.length - 1; });
  }

  function trainingPoints(state, smoothing) {
    var points = [];
    state.steps.forEach(function (series, seriesKey) {
      var parts = seriesKey.split('\u0000');
      var shown = downsample(series, MAX_POINTS);
      var smoothed = smooth(shown.map(function (p) { return p.loss; }), smoothing);
      shown.forEach(function (p, index) {
        points.push({
          method: parts[0], seed: Number(parts[1]), family: family(parts[0]), step: p.step,
          loss: typeof p.loss === 'number' && isFinite(p.loss) ? p.loss : null,
          smoothed: typeof smoothed[index] === 'number' && isFinite(smoothed[index]) ? smoothed[index] : null,
          lr: p.lr, imagesPerSecond: p.imagesPerSecond,
        });
      });
    });
    return points;
  }

  // ---- colours: one hue per family, a shade of it per method, the same in every chart -----------

  var FAMILY_HUES = { full: '#4c78a8', 'top-k blocks': '#f58518', linear: '#e45756', LoRA: '#54a24b', 'block expansion': '#b279a2' };
  var SPARE_HUES = ['#9d755d', '#eeca3b', '#72b7b2', '#ff9da6', '#bab0ac'];

  function hueOf(familyName, families) {
    if (FAMILY_HUES[familyName]) return FAMILY_HUES[familyName];
    var others = families.filter(function (f) { return !FAMILY_HUES[f]; });
    return SPARE_HUES[others.indexOf(familyName) % SPARE_HUES.length];
  }

  /** Mixes a #rrggbb colour toward black (amount < 0) or white (amount > 0). */
  function shade(hex, amount) {
    var target = amount < 0 ? 0 : 255;
    var parts = [1, 3, 5].map(function (i) { var c = parseInt(hex.slice(i, i + 2), 16); return Math.round(c + (target - c) * Math.abs(amount)); });
    return '#' + parts.map(function (c) { return ('0' + c.toString(16)).slice(-2); }).join('');
  }

  function palette(methods) {
    var families = [];
    methods.forEach(function (m) { if (families.indexOf(family(m)) < 0) families.push(family(m)); });
    var methodColours = methods.map(function (m) {
      var siblings = methods.filter(function (o) { return family(o) === family(m); });
      var index = siblings.indexOf(m);
      var amount = siblings.length === 1 ? 0 : -0.3 + (0.75 * index) / (siblings.length - 1);
      return shade(hueOf(family(m), families), amount);
    });
    return {
      method: { domain: methods, range: methodColours },
      family: { domain: families, range: families.map(function (f) { return hueOf(f, families); }) },
    };
  }

  // ---- chart specs ---------------------------------------------------------------------------

  var FONT = 'Helvetica, Arial, sans-serif';
  var CONFIG = { font: FONT, view: { stroke: '#ddd' }, axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' }, legend: { labelFontSize: 11, titleFontSize: 12 } };

  function methodLegendSelection(field) {
    return { name: 'pick', select: { type: 'point', fields: [field || 'method'] }, bind: 'legend' };
  }

  function chart(dataName, width, height, body) {
    return Object.assign({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: width, height: height, data: { name: dataName }, config: CONFIG, autosize: { type: 'fit', contains: 'padding' } }, body);
  }

  function tradeoffSpec(headlineK, colours) {
    return {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 'container', height: 340, config: CONFIG, autosize: { type: 'fit', contains: 'padding' },
      layer: [
        {
          data: { name: 'baseline' },
          layer: [
            { mark: { type: 'rule', strokeDash: [4, 4], color: '#888' }, encoding: { x: { field: 'retention', type: 'quantitative' } } },
            { mark: { type: 'text', angle: 270, dy: -6, align: 'right', baseline: 'bottom', color: '#888', fontSize: 10, y: 0 }, encoding: { x: { field: 'retention', type: 'quantitative' }, text: { value: 'pretrained' } } },
          ],
        },
        {
          data: { name: 'points' },
          layer: [
            {
              params: [methodLegendSelection('family'), { name: 'zoom', select: 'interval', bind: 'scales' }],
              mark: { type: 'circle', opacity: 0.8, stroke: 'black', strokeWidth: 0.5 },
              encoding: {
                x: { field: 'retention', type: 'quantitative', title: 'retention: k-NN@' + headlineK + ' on the pretraining domain (%)', scale: { zero: false, padding: 24 }, axis: { format: '.4~r' } },
                y: { field: 'newTask', type: 'quantitative', title: 'new-task accuracy (%)', scale: { zero: false, padding: 24 }, axis: { format: '.4~r' } },
                size: { field: 'trainableParams', type: 'quantitative', title: 'trainable parameters', scale: { type: 'sqrt', range: [40, 1200] }, legend: { format: '~s', tickCount: 3 } },
                color: { field: 'family', type: 'nominal', title: 'family', scale: colours.family },
                opacity: { condition: { param: 'pick', value: 0.85 }, value: 0.15 },
                tooltip: [
                  { field: 'method' }, { field: 'family' }, { field: 'trainableParams', title: 'trainable params', format: ',' },
                  { field: 'newTaskText', title: 'new task' }, { field: 'retentionText', title: 'retention' }, { field: 'meanText', title: 'mean' },
                  { field: 'seeds' }, { field: 'status' },
                ],
              },
            },
            { mark: { type: 'text', dx: 9, dy: -9, align: 'left', fontSize: 11 }, encoding: { x: { field: 'retention', type: 'quantitative' }, y: { field: 'newTask', type: 'quantitative' }, text: { field: 'method' } } },
          ],
        },
      ],
    };
  }

  function stepAxis(log) {
    return { field: 'step', type: 'quantitative', title: log ? 'training step (log)' : 'training step', scale: log ? { type: 'symlog', constant: 1 } : { nice: false }, axis: { format: ',d', tickMinStep: 1 } };
  }

  function curveSpec(measures, title, log, baselineRule, colours) {
    var layers = [
      {
        transform: [{ filter: { field: 'measure', oneOf: measures } }],
        params: [methodLegendSelection(), { name: 'zoom', select: 'interval', bind: 'scales' }],
        mark: { type: 'line', point: { size: 28 }, interpolate: 'linear' },
        encoding: {
          x: stepAxis(log),
          y: { field: 'accuracy', type: 'quantitative', title: title, scale: { zero: false }, axis: { format: '.4~r' } },
          color: { field: 'method', type: 'nominal', title: 'method', scale: colours.method },
          strokeDash: { field: 'measure', type: 'nominal', title: 'measure', legend: measures.length > 1 ? {} : null, scale: { domain: measures, range: measures.map(function (m) { return m === 'retention, unplugged' ? [5, 3] : [1, 0]; }) } },
          opacity: { condition: { param: 'pick', value: 1 }, value: 0.12 },
          tooltip: [{ field: 'method' }, { field: 'measure' }, { field: 'step' }, { field: 'accuracy', format: '.2f' }, { field: 'std', format: '.2f', title: 'std over seeds' }, { field: 'seeds' }],
        },
      },
    ];
    if (baselineRule) layers.unshift({ data: { name: 'baseline' }, mark: { type: 'rule', strokeDash: [4, 4], color: '#888' }, encoding: { y: { field: 'retention', type: 'quantitative' }, tooltip: [{ field: 'retention', title: 'pretrained', format: '.2f' }] } });
    return chart('curves', 'container', 280, { layer: layers });
  }

  function trainingSpec(field, title, log, logY, colours) {
    var y = field === 'loss' ? 'smoothed' : field;
    var layers = [{
      params: [methodLegendSelection(), { name: 'zoom', select: 'interval', bind: 'scales' }],
      mark: { type: 'line', strokeWidth: 1.6 },
      encoding: {
        x: stepAxis(log),
        y: { field: y, type: 'quantitative', title: title, scale: logY ? { type: 'log' } : { zero: false } },
        color: { field: 'method', type: 'nominal', title: 'method', scale: colours.method },
        detail: { field: 'seed' },
        opacity: { condition: { param: 'pick', value: 1 }, value: 0.12 },
        tooltip: [{ field: 'method' }, { field: 'seed' }, { field: 'step' }, { field: y, title: title, format: '.4~g' }, { field: 'loss', format: '.4~g', title: 'loss (raw)' }],
      },
    }];
    // The raw loss, faint behind the smoothed line, as TensorBoard draws it.
    if (field === 'loss') {
      layers.push({ mark: { type: 'line', strokeWidth: 1, opacity: 0.22 }, encoding: { x: stepAxis(log), y: { field: 'loss', type: 'quantitative' }, color: { field: 'method', type: 'nominal', scale: colours.method }, detail: { field: 'seed' } } });
    }
    return chart('training', 'container', 240, { layer: layers });
  }

  // ---- rendering -----------------------------------------------------------------------------

  function format(s, digits) {
    if (!s) return '—';
    var d = digits === undefined ? 2 : digits;
    return s.n > 1 ? s.mean.toFixed(d) + ' ± ' + s.std.toFixed(d) : s.mean.toFixed(d);
  }

  function element(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (name === 'text') node.textContent = attributes[name];
      else node.setAttribute(name, attributes[name]);
    });
    (children || []).forEach(function (child) { node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child); });
    return node;
  }

  var sortBy = { column: null, descending: true };

  function tableColumns(headline) {
    return [
      { id: 'method', title: 'method', value: function (r) { return r.method; }, text: function (r) { return r.seeds > 1 ? r.method + ' (' + r.seeds + ' seeds)' : r.method; } },
      { id: 'family', title: 'family', value: function (r) { return r.family; } },
      { id: 'params', title: 'trainable params', numeric: true, value: function (r) { return r.trainableParams; }, text: function (r) { return r.trainableParams === undefined ? '—' : r.trainableParams.toLocaleString('en-US'); } },
      { id: 'newTask', title: 'new task', numeric: true, value: function (r) { return r.newTask && r.newTask.mean; }, text: function (r) { return format(r.newTask); } },
      { id: 'newTaskBest', title: 'new task (best)', numeric: true, optional: true, value: function (r) { return r.newTaskBest && r.newTaskBest.mean; }, text: function (r) { return format(r.newTaskBest); } },
      { id: 'retention', title: 'retention (k-NN@' + headline + ')', numeric: true, value: function (r) { return r.retention && r.retention.mean; }, text: function (r) { return format(r.retention); } },
      { id: 'mean', title: 'mean', numeric: true, value: function (r) { return r.mean && r.mean.mean; }, text: function (r) { return format(r.mean); } },
      { id: 'unplugged', title: 'unplugged', numeric: true, optional: true, value: function (r) { return r.retentionUnplugged && r.retentionUnplugged.mean; }, text: function (r) { return format(r.retentionUnplugged); } },
      { id: 'frozenHead', title: 'frozen head', numeric: true, optional: true, value: function (r) { return r.frozenHead && r.frozenHead.mean; }, text: function (r) { return format(r.frozenHead); } },
      { id: 'status', title: 'status', value: function (r) { return r.status; }, text: function (r) { return r.note ? r.status + ' (' + r.note + ')' : r.status; } },
    ];
  }

  function renderTable(state, rows) {
    var headline = state.info.knnHeadline;
    var baselineRow = {
      method: BASELINE, family: BASELINE, seeds: 1, trainableParams: 0, status: 'ok',
      retention: state.baseline.retention === undefined ? undefined : { mean: state.baseline.retention, std: 0, n: 1 },
      frozenHead: state.baseline.frozenHead === undefined ? undefined : { mean: state.baseline.frozenHead, std: 0, n: 1 },
    };
    var columns = tableColumns(headline).filter(function (c) {
      return !c.optional || rows.concat([baselineRow]).some(function (r) { var v = c.value(r); return v !== undefined && v !== null; });
    });
    var sorted = rows.slice();
    if (sortBy.column) {
      var column = columns.filter(function (c) { return c.id === sortBy.column; })[0];
      if (column) {
        sorted.sort(function (a, b) {
          var x = column.value(a), y = column.value(b);
          if (x === undefined || x === null) return 1;
          if (y === undefined || y === null) return -1;
          var order = column.numeric ? x - y : String(x).localeCompare(String(y));
          return sortBy.descending ? -order : order;
        });
      }
    }
    var head = element('tr', {}, columns.map(function (c) {
      var marker = sortBy.column === c.id ? (sortBy.descending ? ' ▼' : ' ▲') : '';
      var th = element('th', { 'data-column': c.id, class: c.numeric ? 'numeric sortable' : 'sortable', title: 'sort by ' + c.title, text: c.title + marker });
      th.addEventListener('click', function () {
        sortBy = { column: c.id, descending: sortBy.column === c.id ? !sortBy.descending : !!c.numeric };
        renderTable(state, rows);
      });
      return th;
    }));
    var body = [baselineRow].concat(sorted).map(function (r) {
      var classes = [r.method === BASELINE ? 'baseline' : '', r.provisional ? 'provisional' : '', r.status !== 'ok' && !r.provisional ? 'not-ok' : ''].join(' ').trim();
      return element('tr', { 'data-method': r.method, class: classes }, columns.map(function (c) {
        return element('td', { class: c.numeric ? 'numeric' : '', text: c.text ? c.text(r) : String(c.value(r)) });
      }));
    });
    var table = document.getElementById('results');
    table.replaceChildren(element('thead', {}, [head]), element('tbody', {}, body));
  }

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
})();
