// The Vega-Lite specs of the report's charts, and their colours: one hue per family, a shade of
// it per method, the same in every chart. Data come in by name (view.data), so a live chart
// updates without being rebuilt.

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
