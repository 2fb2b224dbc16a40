// Shared by the reliability tests: the toy pipeline they interrupt, and the run-folder
// comparisons (results.csv byte for byte; metrics and evaluations without their wall times;
// saved models byte for byte).

import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { csvRowsWithout } from '../helpers/pretrainRun';

/**
 * Three methods on two optimizers, 8 steps of batch 16 over 64 images (two epochs, so a resume
 * can land on either side of a reshuffle), evaluations every 4 steps and checkpoints every 2.
 */
export const INTERRUPTIBLE = {
  train: { steps: 8, batchSize: 16, optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0, warmupSteps: 2, schedule: 'cosine', seed: 0, checkpointEvery: 2 },
  evaluate: { every: 4, batchSize: 32, knn: { k: [5, 10], temperature: 0.07, headline: 10 } },
  methods: [{ method: 'full' }, { method: 'lora', rank: 2, train: { optimizer: 'adamw', lr: 0.01, weightDecay: 0.01 } }, { method: 'linear' }],
};

export const TOTAL_STEPS = 3 * 8;

/** Asserts that a run folder holds what an uninterrupted run's holds (wall times aside). */
export function expectSameRun(actual: string, expected: string, context = ''): void {
  expect(fs.readFileSync(path.join(actual, 'results.csv'), 'utf8'), `results.csv ${context}`).to.equal(fs.readFileSync(path.join(expected, 'results.csv'), 'utf8'));
  expect(csvRowsWithout(path.join(actual, 'metrics.csv'), 'images_per_second'), `metrics.csv ${context}`).to.deep.equal(csvRowsWithout(path.join(expected, 'metrics.csv'), 'images_per_second'));
  expect(csvRowsWithout(path.join(actual, 'evals.csv'), 'seconds'), `evals.csv ${context}`).to.deep.equal(csvRowsWithout(path.join(expected, 'evals.csv'), 'seconds'));
  const models = path.join(expected, 'models');
  if (fs.existsSync(models)) {
    for (const name of fs.readdirSync(models)) {
      expect(fs.readFileSync(path.join(actual, 'models', name)).equals(fs.readFileSync(path.join(models, name))), `models/${name} ${context}`).to.equal(true);
    }
  }
  const checkpoints = path.join(actual, 'checkpoints');
  expect(fs.existsSync(checkpoints) ? fs.readdirSync(checkpoints) : [], `checkpoints left ${context}`).to.deep.equal([]);
}

/** Data rows of a CSV written by the reporter (0 if it does not exist yet). */
export function rowCount(file: string): number {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return Math.max(0, text.split('\n').length - 2);
  } catch {
    return 0;
  }
}
