// The results table: the pretrained baseline first, then one row per method; a click on a
// column sorts by it (the baseline stays first).

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
