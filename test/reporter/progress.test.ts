// The progress line says what it measures: training images/s from the steps' own speed, and the
// time left counting the evaluations still to come.

import { expect } from 'chai';
import { Progress, remainingEvaluations } from '../../stages/reporter/progress';

describe('progress line', () => {
  it('counts the evaluations still to come: every N steps and after the last', () => {
    expect(remainingEvaluations(0, 200, 20)).to.equal(10);
    expect(remainingEvaluations(20, 200, 20)).to.equal(9);
    expect(remainingEvaluations(199, 200, 20)).to.equal(1);
    expect(remainingEvaluations(200, 200, 20)).to.equal(0);
    expect(remainingEvaluations(0, 210, 20)).to.equal(11); // 10 periodic + the last step
    expect(remainingEvaluations(5, 100, 0)).to.equal(1);
    // evaluate.at beside every 40: 1, 2, 5, 10, 20, 50 and 100 are extra; 0 is past; 40, 80, ... counted once.
    expect(remainingEvaluations(0, 200, 40, [0, 1, 2, 5, 10, 20, 40, 50, 100])).to.equal(5 + 7);
    expect(remainingEvaluations(20, 200, 40, [0, 1, 2, 5, 10, 20, 40, 50, 100])).to.equal(5 + 2);
  });

  it('labels the speed as training speed and adds the evaluations to the time left', () => {
    const lines: string[] = [];
    const progress = new Progress(false, (text) => lines.push(text));
    progress.methodStart({ kind: 'method-start', method: 'full', seed: 0, trainableParams: 10, description: 'd', steps: 20, fromStep: 0, evaluateEvery: 5 });
    const step = (n: number) => progress.step({ kind: 'step', method: 'full', seed: 0, step: n, steps: 20, epoch: 0, loss: 1, lr: 0.1, imagesPerSecond: 400 });
    step(1);
    step(2);
    // Plain output writes every tenth of the steps: step 2 of 20 wrote a line.
    expect(lines.join('')).to.match(/step 2\/20 .* train 400\.0 img\/s, left \d+s \+ 4 evals\n/);
    progress.evaluation({ kind: 'eval', method: 'full', seed: 0, step: 5, newTaskAccuracy: 50, seconds: 30 }, 20);
    step(6);
    // 3 evaluations left at 30 s each: at least 1m30s.
    expect(lines.at(-1)).to.match(/step 6\/20 .* left 1m3\ds\n$/);
  });
});
