// The forgetting plot's step axis: log (symlog, step 0 kept) when the evaluations are log-spaced,
// linear when they are regular.

import { expect } from 'chai';
import { forgettingSpec, logSpacedSteps, renderSvg } from '../../stages/reporter/plots';

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
});
