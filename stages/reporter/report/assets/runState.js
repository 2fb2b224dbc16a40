// The run's state in the report page: what vitpeft's pipeline events, folded in order, say about
// the run (steps per method and seed, evaluations, results, the baseline, the job in progress).
// Applying an event twice changes nothing, so a history and a live tail may overlap.

var BASELINE = 'pretrained';
/** Points kept per training series (thinned by half past twice this while live). */
var MAX_POINTS = 1000;

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
    highestStep: new Map(),
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
      // A step seen before (a history overlapping the tail, a resumed job repeating the steps after
      // its checkpoint): the later values replace the earlier, and it is not counted again.
      if (event.step > (state.highestStep.get(seriesKey) || 0)) {
        state.highestStep.set(seriesKey, event.step);
        state.stepsSeen += 1;
      }
      while (series.length > 0 && series[series.length - 1].step >= event.step) series.pop();
      series.push({ step: event.step, loss: event.loss, lr: event.lr, epoch: event.epoch, imagesPerSecond: event.imagesPerSecond });
      if (series.length > 2 * MAX_POINTS) thin(series);
      state.current = { method: event.method, seed: event.seed, step: event.step, steps: event.steps };
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
