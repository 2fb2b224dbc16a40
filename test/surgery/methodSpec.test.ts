import { expect } from 'chai';
import { MethodSpec, SurgeryError, applySurgery, methodLabel, parseMethodLabel, resolveSpec } from '../../stages/surgery';
import { tinyModel } from './fixtures';

function refusal(spec: MethodSpec, depth = 12): SurgeryError {
  try {
    resolveSpec(spec, depth);
  } catch (error) {
    expect(error).to.be.instanceOf(SurgeryError);
    return error as SurgeryError;
  }
  throw new Error(`expected ${JSON.stringify(spec)} to be refused`);
}

describe('surgery: method specs', () => {
  it('fills in the defaults: alpha = rank, targets query and value, interleaved placement', () => {
    expect(resolveSpec({ method: 'lora', rank: 8 }, 12)).to.deep.equal({ method: 'lora', rank: 8, alpha: 8, targets: ['query', 'value'] });
    expect(resolveSpec({ method: 'lora', rank: 4, alpha: 16, targets: ['fc2', 'query'] }, 12)).to.deep.equal({ method: 'lora', rank: 4, alpha: 16, targets: ['query', 'fc2'] });
    expect(resolveSpec({ method: 'block', p: 4 }, 12)).to.deep.equal({ method: 'block', p: 4, placement: 'interleaved' });
    expect(resolveSpec({ method: 'block', split: 3 }, 12)).to.deep.equal({ method: 'block', p: 4, placement: 'interleaved' });
    expect(resolveSpec({ method: 'block', p: 5, placement: 'top' }, 12)).to.deep.equal({ method: 'block', p: 5, placement: 'top' });
  });

  const cases: Array<[string, MethodSpec, string, RegExp]> = [
    ['k = 0', { method: 'topk', k: 0 }, 'topk.k', /topk: k must be an integer in \[1, 12\].*got 0/],
    ['k above the depth', { method: 'topk', k: 13 }, 'topk.k', /topk: k must be an integer in \[1, 12\].*got 13/],
    ['a fractional k', { method: 'topk', k: 2.5 }, 'topk.k', /\[1, 12\].*got 2.5/],
    ['rank 0', { method: 'lora', rank: 0 }, 'lora.rank', /lora: rank must be a positive integer \(at least 1\), got 0/],
    ['a negative rank', { method: 'lora', rank: -4 }, 'lora.rank', /lora: rank must be a positive integer.*got -4/],
    ['alpha 0', { method: 'lora', rank: 4, alpha: 0 }, 'lora.alpha', /lora: alpha must be a positive finite number/],
    ['an unknown target', { method: 'lora', rank: 4, targets: ['query', 'qury'] }, 'lora.targets', /unknown target 'qury'; allowed targets: query, key, value, proj, fc1, fc2/],
    ['no targets', { method: 'lora', rank: 4, targets: [] }, 'lora.targets', /non-empty list drawn from query, key, value, proj, fc1, fc2/],
    ['a repeated target', { method: 'lora', rank: 4, targets: ['value', 'value'] }, 'lora.targets', /twice/],
    ['p = 0', { method: 'block', p: 0 }, 'block.p', /block: p must be an integer in \[1, 12\].*got 0/],
    ['p above the depth', { method: 'block', p: 13, placement: 'top' }, 'block.p', /block: p must be an integer in \[1, 12\].*got 13/],
    ['p that does not divide the depth', { method: 'block', p: 5 }, 'block.p', /p must divide the depth 12 .*allowed: 1, 2, 3, 4, 6, 12\), got 5/],
    ['a split that does not divide the depth', { method: 'block', split: 5 }, 'block.split', /split must divide the depth 12 \(allowed: 1, 2, 3, 4, 6, 12\), got 5/],
    ['p contradicting split', { method: 'block', p: 2, split: 3 }, 'block.p', /p = 2 contradicts split = 3/],
    ['neither p nor split', { method: 'block' }, 'block.p', /give p .* or split/],
    ['an unknown placement', { method: 'block', p: 1, placement: 'bottom' as 'top' }, 'block.placement', /placement must be one of interleaved, top, got 'bottom'/],
    ['an unknown method', { method: 'prompt' } as unknown as MethodSpec, 'method', /unknown method 'prompt' \(expected one of full, topk, linear, lora, block\)/],
  ];
  for (const [what, spec, option, message] of cases) {
    it(`refuses ${what}, naming the option and the allowed range`, () => {
      const error = refusal(spec);
      expect(error.option).to.equal(option);
      expect(error.message).to.match(message);
    });
  }

  it('refuses before building anything, and refuses a bad number of classes', () => {
    const base = tinyModel(4);
    try {
      expect(() => applySurgery(base, { method: 'topk', k: 5 }, { classes: 10 })).to.throw(SurgeryError, /\[1, 4\]/);
      expect(() => applySurgery(base, { method: 'linear' }, { classes: 0 })).to.throw(SurgeryError, /classes must be a positive integer, got 0/);
      expect(() => applySurgery(base, { method: 'block', p: 3 }, { classes: 10 })).to.throw(SurgeryError, /allowed: 1, 2, 4/);
    } finally {
      base.dispose();
    }
  });

  it('labels methods and reads the labels back', () => {
    const labels = ['full', 'linear', 'top3', 'lora-r4', 'lora-r8-alpha16', 'lora-r2-t-query-key-fc1', 'block-p4', 'block-p2-top'];
    for (const label of labels) expect(methodLabel(resolveSpec(parseMethodLabel(label), 12))).to.equal(label);
    expect(() => parseMethodLabel('lora')).to.throw(SurgeryError, /unknown method label 'lora'/);
  });
});
