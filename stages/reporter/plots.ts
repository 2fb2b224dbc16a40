// The two pictures of a run, as Vega-Lite specs rendered to SVG in Node (no browser):
// the trade-off (new-task accuracy against retention, point size = trainable parameters) and the
// forgetting curves (retention against training step, one line per method). Over several seeds
// the points are means, with ± one standard deviation drawn as error bars (trade-off) and as a
// band around each curve (forgetting).

export interface TradeoffPoint {
  readonly method: string;
  readonly newTaskAccuracy: number;
  readonly retentionAccuracy: number;
  readonly trainableParams: number;
  /** Sample standard deviations over seeds (absent or 0 for one seed). */
  readonly newTaskStd?: number;
  readonly retentionStd?: number;
}

export interface CurvePoint {
  readonly method: string;
  readonly step: number;
  readonly retentionAccuracy: number;
  readonly newTaskAccuracy?: number;
  /** Sample standard deviation of retentionAccuracy over seeds. */
  readonly retentionStd?: number;
}

/** Whether any point carries a spread over seeds worth drawing. */
const hasSpread = (values: ReadonlyArray<number | undefined>): boolean => values.some((value) => value !== undefined && value > 0);

/** `field` ± `std` as the fields `<field>Low` and `<field>High` (the mean alone without a std). */
function withExtent<T extends object>(point: T, field: keyof T & string, std: number | undefined): T & Record<string, number> {
  const mean = point[field] as unknown as number;
  return { ...point, [`${field}Low`]: mean - (std ?? 0), [`${field}High`]: mean + (std ?? 0) } as T & Record<string, number>;
}

type VegaLiteSpec = Record<string, unknown>;

const FONT = 'Helvetica, Arial, sans-serif';

/** A 520-wide layered Vega-Lite chart over `points`, in the plots' font. */
function layeredChart(title: string, height: number, points: readonly object[], layers: VegaLiteSpec[]): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: title, font: FONT },
    width: 520,
    height,
    data: { values: points.map((p) => ({ ...p })) },
    layer: layers,
    config: { font: FONT, axis: { labelFont: FONT, titleFont: FONT }, legend: { labelFont: FONT, titleFont: FONT } },
  };
}

export function tradeoffSpec(points: readonly TradeoffPoint[], baselineRetention: number | undefined, title: string): VegaLiteSpec {
  const layers: VegaLiteSpec[] = [
    {
      mark: { type: 'circle', opacity: 0.75, stroke: 'black', strokeWidth: 0.5 },
      encoding: {
        x: { field: 'retentionAccuracy', type: 'quantitative', title: 'retention: k-NN accuracy on the pretraining domain (%)', scale: { zero: false, padding: 20 } },
        y: { field: 'newTaskAccuracy', type: 'quantitative', title: 'new-task accuracy (%)', scale: { zero: false, padding: 20 } },
        size: { field: 'trainableParams', type: 'quantitative', title: 'trainable parameters', scale: { type: 'sqrt', range: [40, 1200] } },
        color: { field: 'method', type: 'nominal', legend: null },
        tooltip: [{ field: 'method' }, { field: 'trainableParams', format: ',' }],
      },
    },
    {
      mark: { type: 'text', dx: 10, dy: -10, align: 'left', fontSize: 11, font: FONT },
      encoding: {
        x: { field: 'retentionAccuracy', type: 'quantitative' },
        y: { field: 'newTaskAccuracy', type: 'quantitative' },
        text: { field: 'method' },
      },
    },
  ];
  const spread = hasSpread(points.flatMap((p) => [p.newTaskStd, p.retentionStd]));
  if (spread) {
    // ± one standard deviation over seeds, in both directions, behind the points.
    const bar = (low: string, high: string, along: 'x' | 'y', other: string): VegaLiteSpec => ({
      mark: { type: 'errorbar', ticks: true },
      encoding: {
        [along]: { field: low, type: 'quantitative' },
        [`${along}2`]: { field: high },
        [along === 'x' ? 'y' : 'x']: { field: other, type: 'quantitative' },
        color: { field: 'method', type: 'nominal', legend: null },
      },
    });
    layers.unshift(bar('retentionAccuracyLow', 'retentionAccuracyHigh', 'x', 'newTaskAccuracy'), bar('newTaskAccuracyLow', 'newTaskAccuracyHigh', 'y', 'retentionAccuracy'));
  }
  if (baselineRetention !== undefined) {
    layers.push({
      data: { values: [{ baseline: baselineRetention, label: 'pretrained' }] },
      layer: [
        { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { x: { field: 'baseline', type: 'quantitative' } } },
        { mark: { type: 'text', angle: 270, dy: -6, align: 'right', baseline: 'bottom', color: 'gray', fontSize: 10, font: FONT, y: 0 }, encoding: { x: { field: 'baseline', type: 'quantitative' }, text: { field: 'label' } } },
      ],
    });
  }
  return layeredChart(spread ? `${title} (mean ± std over seeds)` : title, 380, points.map((p) => withExtent(withExtent(p, 'newTaskAccuracy', p.newTaskStd), 'retentionAccuracy', p.retentionStd)), layers);
}

/**
 * Evaluation steps that grow geometrically (each gap at least 1.5 times the one before, for most
 * of them; evaluate.at: [0, 1, 2, 5, 10, 20, ...]) are drawn on a log axis (symlog, so step 0
 * stays). The report page applies the same rule.
 */
export function logSpacedSteps(steps: readonly number[]): boolean {
  const sorted = [...new Set(steps)].filter((step) => step > 0).sort((a, b) => a - b);
  if (sorted.length < 4) return false;
  let growing = 0;
  for (let i = 2; i < sorted.length; i++) if (sorted[i] - sorted[i - 1] >= 1.5 * (sorted[i - 1] - sorted[i - 2])) growing++;
  return growing >= 0.75 * (sorted.length - 2);
}

export function forgettingSpec(points: readonly CurvePoint[], baselineRetention: number | undefined, title: string): VegaLiteSpec {
  const log = logSpacedSteps(points.map((point) => point.step));
  const layers: VegaLiteSpec[] = [
    {
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: log ? 'training step (log)' : 'training step', ...(log ? { scale: { type: 'symlog' } } : {}) },
        y: { field: 'retentionAccuracy', type: 'quantitative', title: 'retention: k-NN accuracy on the pretraining domain (%)', scale: { zero: false } },
        color: { field: 'method', type: 'nominal', title: 'method' },
      },
    },
  ];
  const spread = hasSpread(points.map((p) => p.retentionStd));
  if (spread) {
    layers.unshift({
      mark: { type: 'errorband', opacity: 0.2 },
      encoding: {
        x: { field: 'step', type: 'quantitative', ...(log ? { scale: { type: 'symlog' } } : {}) },
        y: { field: 'retentionAccuracyLow', type: 'quantitative' },
        y2: { field: 'retentionAccuracyHigh' },
        color: { field: 'method', type: 'nominal' },
      },
    });
  }
  if (baselineRetention !== undefined) {
    layers.push({
      data: { values: [{ baseline: baselineRetention }] },
      mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
      encoding: { y: { field: 'baseline', type: 'quantitative' } },
    });
  }
  return layeredChart(spread ? `${title} (mean ± std over seeds)` : title, 320, points.map((p) => withExtent(p, 'retentionAccuracy', p.retentionStd)), layers);
}

/** Compiles Vega-Lite and renders SVG headlessly (vega and vega-lite are ES modules: loaded with import()). */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const vega = await import('vega');
  const vegaLite = await import('vega-lite');
  const compiled = vegaLite.compile(spec as unknown as Parameters<typeof vegaLite.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
