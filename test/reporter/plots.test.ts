// The forgetting plot's step axis: log (symlog, step 0 kept) when the evaluations are log-spaced,
// linear when they are regular.

import { expect } from 'chai';
import { forgettingSpec, logSpacedSteps, renderSvg, tradeoffSpec } from '../../stages/reporter/plots';
import { meanCurves } from '../../stages/reporter/stage';

describe('forgetting plot', () => {
  it('calls evaluation steps log-spaced when they grow geometrically, not when they are regular', () => {
    expect(logSpacedSteps([0, 1, 2, 5, 10, 20, 50, 100, 200])).to.equal(true);
    expect(logSpacedSteps([0, 40, 80, 120, 160, 200])).to.equal(false);
    expect(logSpacedSteps([0, 1, 2])).to.equal(false);
  });

  it('draws log-spaced evaluations on a symlog step axis, and regular ones on a linear axis', async () => {
    const curve = (steps: number[]) => steps.map((step, i) => ({ method: 'full', step, retentionAccuracy: 90 - i }));
    const log = forgettingSpec(curve([0, 1, 2, 5, 10, 20, 50, 100, 200]), 95, 'x') as { layer: Array<{ encoding?: { x?: { scale?: { type?: string }; title?: string } } }> };
    expect(log.layer[0].encoding?.x?.scale?.type).to.equal('symlog');
    expect(await renderSvg(log)).to.include('training step (log)');
    const linear = forgettingSpec(curve([0, 40, 80, 120, 160, 200]), 95, 'x') as typeof log;
    expect(linear.layer[0].encoding?.x?.scale).to.equal(undefined);
  });

  it('over several seeds: mean curves with their sample std, drawn as a band; one seed draws none', async () => {
    const seeds = [
      { method: 'full', step: 40, retentionAccuracy: 80 },
      { method: 'full', step: 40, retentionAccuracy: 84 },
      { method: 'full', step: 80, retentionAccuracy: 70 },
      { method: 'full', step: 80, retentionAccuracy: 76 },
    ];
    const mean = meanCurves(seeds);
    expect(mean).to.deep.equal([
      { method: 'full', step: 40, retentionAccuracy: 82, retentionStd: Math.sqrt(8) },
      { method: 'full', step: 80, retentionAccuracy: 73, retentionStd: Math.sqrt(18) },
    ]);
    type Spec = { title: { text: string }; data: { values: Array<Record<string, number>> }; layer: Array<{ mark?: { type?: string } }> };
    const banded = forgettingSpec(mean, 95, 'x') as Spec;
    expect(banded.layer.map((l) => l.mark?.type)).to.include('errorband');
    expect(banded.title.text).to.equal('x (mean ± std over seeds)');
    expect(banded.data.values[0]).to.include({ retentionAccuracyLow: 82 - Math.sqrt(8), retentionAccuracyHigh: 82 + Math.sqrt(8) });
    expect(await renderSvg(banded)).to.match(/^<svg/);
    const single = forgettingSpec(meanCurves(seeds.filter((_, i) => i % 2 === 0)), 95, 'x') as Spec;
    expect(single.layer.map((l) => l.mark?.type)).to.not.include('errorband');
    expect(single.title.text).to.equal('x');
  });

  it('the trade-off over several seeds: ± std error bars along both axes; none for one seed', async () => {
    type Spec = { title: { text: string }; layer: Array<{ mark?: { type?: string }; encoding?: Record<string, { field?: string }> }> };
    const points = [
      { method: 'full', newTaskAccuracy: 90, retentionAccuracy: 70, trainableParams: 1000, newTaskStd: 1.5, retentionStd: 4 },
      { method: 'linear', newTaskAccuracy: 78, retentionAccuracy: 97, trainableParams: 10, newTaskStd: 0.5, retentionStd: 0 },
    ];
    const spec = tradeoffSpec(points, 97.5, 't') as Spec;
    const bars = spec.layer.filter((l) => l.mark?.type === 'errorbar');
    expect(bars.map((b) => [b.encoding?.x?.field, b.encoding?.y?.field])).to.deep.equal([['retentionAccuracyLow', 'newTaskAccuracy'], ['retentionAccuracy', 'newTaskAccuracyLow']]);
    expect(spec.title.text).to.equal('t (mean ± std over seeds)');
    expect(await renderSvg(spec)).to.match(/^<svg/);
    const one = tradeoffSpec(points.map(({ newTaskStd: _n, retentionStd: _r, ...p }) => p), 97.5, 't') as Spec;
    expect(one.layer.some((l) => l.mark?.type === 'errorbar')).to.equal(false);
  });
});
