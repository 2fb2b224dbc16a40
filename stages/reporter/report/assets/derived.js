// What the table and the charts show, derived from the run's state: one summary row per method
// (mean ± std over seeds), evaluation curves averaged over seeds, training series smoothed and
// downsampled.

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
