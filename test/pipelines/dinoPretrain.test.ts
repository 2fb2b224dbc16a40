// DINO pretraining through `pretrain` and the one job loop: stopped and resumed it writes the same
// teacher file byte for byte (with the same metrics and k-NN monitor rows); the file is the
// teacher's backbone in timm layout without a head, its metadata saying objective, recipe, data
// and that no labels trained it; bad specs are refused naming the field.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { parse } from 'csv-parse/sync';
import * as fs from 'fs';
import * as path from 'path';
import { SafetensorsFile } from '../../models/checkpoint/safetensors';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import type { PretrainResult } from '../../pipelines/pretrain';
import { decodePretrain, loadPretrainFile } from '../../pipelines/pretrainSpec';
import { PipelineSpecError } from '../../pipelines/spec';
import { REPO_ROOT } from '../helpers/cli';
import { tempFolder } from '../helpers/datasetFixtures';
import { toyDataset } from '../helpers/pipelineFixtures';
import { csvRowsWithout, runPretraining, stopAfter } from '../helpers/pretrainRun';

const STEPS = 8;

function dinoSpec(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'toy-dino',
    objective: 'dino',
    architecture: { patchSize: 4, width: 32, depth: 2, heads: 2, mlpHidden: 64 },
    data: { train: 'safetensors:train.safetensors', retention: { bank: 'safetensors:bank.safetensors', query: 'safetensors:query.safetensors' } },
    preprocess: { size: 16 },
    train: { steps: STEPS, batchSize: 8, lr: 0.001, warmupSteps: 2, schedule: 'cosine', seed: 4, checkpointEvery: 3 },
    dino: { outDim: 32, hiddenDim: 48, bottleneckDim: 16, freezeLastLayerSteps: 2, teacherTemperature: { warmupSteps: 4 }, crops: { localCrops: 2, localSize: 8 }, augment: { flip: false } },
    evaluate: { every: 4, batchSize: 32 },
    output: 'teacher.safetensors',
    ...overrides,
  };
}

function dinoFixture(): string {
  const folder = tempFolder('vitpeft-dino-');
  toyDataset(path.join(folder, 'train.safetensors'), 48, 'colour', 1);
  toyDataset(path.join(folder, 'bank.safetensors'), 32, 'brightness', 2);
  toyDataset(path.join(folder, 'query.safetensors'), 16, 'brightness', 3);
  const file = path.join(folder, 'pretrain-dino.json');
  fs.writeFileSync(file, JSON.stringify(dinoSpec()));
  return file;
}

function problems(spec: Record<string, unknown>): string[] {
  try {
    decodePretrain(spec, 'dino.json');
  } catch (error) {
    expect(error).to.be.instanceOf(PipelineSpecError);
    return [...(error as PipelineSpecError).problems];
  }
  return [];
}

describe('DINO pretraining (objective "dino")', function () {
  this.timeout(120_000);
  let file: string;
  let reference: { folder: string; model: string; result: PretrainResult };

  before(async () => {
    file = dinoFixture();
    const folder = path.join(tempFolder('vitpeft-dino-ref-'), 'run');
    const result = await runPretraining(file, folder);
    expect(result.status).to.equal('ok');
    const model = path.join(tempFolder('vitpeft-dino-model-'), 'reference.safetensors');
    fs.copyFileSync(result.output, model);
    reference = { folder, model, result };
  });

  it('writes the teacher backbone in timm layout without a head; metadata: objective, recipe, data, no labels used', () => {
    const contents = SafetensorsFile.open(reference.model);
    try {
      expect(contents.names.some((name) => name.startsWith('head'))).to.equal(false);
      expect(contents.names).to.include.members(['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'blocks.1.mlp.fc2.bias', 'norm.weight']);
      const provenance = JSON.parse(contents.metadata['vitpeft.pretrain']);
      expect(provenance).to.include({ objective: 'dino', model: 'teacher', train: 'safetensors:train.safetensors', labels_used_for_training: false, steps: STEPS, seed: 4 });
      expect(provenance.recipe.dino).to.include({ outDim: 32, studentTemperature: 0.1, centerMomentum: 0.9, teacherMomentum: 0.996 });
      expect(provenance.recipe.dino.crops).to.deep.equal({ globalScale: [0.4, 1], localCrops: 2, localSize: 8, localScale: [0.05, 0.4] });
      expect(provenance.knn20).to.equal(Number(reference.result.knnAccuracy!.toFixed(4)));
    } finally {
      contents.close();
    }
    const { model, summary } = loadVit(reference.model);
    expect(summary.config).to.include({ numClasses: 0, width: 32, depth: 2, imageSize: 16 });
    model.dispose();
    expect(csvRowsWithout(path.join(reference.folder, 'evals.csv'), 'seconds').map((row) => row[1])).to.deep.equal(['step=0', 'step=4', 'step=8']);
    const metrics = parse(fs.readFileSync(path.join(reference.folder, 'metrics.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
    expect(metrics.length).to.equal(STEPS);
    expect(Number(metrics[0].teacher_temperature)).to.equal(0.04);
    expect(Number(metrics[4].teacher_temperature)).to.equal(0.07);
    expect(metrics.every((row) => Number(row.teacher_entropy) >= 0 && Number(row.teacher_entropy) <= Math.log(32) + 1e-6)).to.equal(true);
  });

  it('stopped between checkpoints (step 5), then resumed: the same teacher file, metrics and k-NN rows; no tensors left', async () => {
    const folder = path.join(tempFolder('vitpeft-dino-stop-'), 'run');
    const tensors = tf.memory().numTensors;
    const stopped = await runPretraining(file, folder, { stop: stopAfter(5) });
    expect(tf.memory().numTensors, 'tensors left by a stopped DINO pretraining').to.equal(tensors);
    expect([stopped.status, stopped.steps]).to.deep.equal(['interrupted', 5]);
    expect(fs.readdirSync(path.join(folder, 'checkpoints'))).to.deep.equal(['pretrain.safetensors']);
    const resumed = await runPretraining(file, folder, { resume: true });
    expect(resumed.status).to.equal('ok');
    expect(fs.readFileSync(resumed.output).equals(fs.readFileSync(reference.model)), 'the teacher file, byte for byte').to.equal(true);
    expect(csvRowsWithout(path.join(folder, 'metrics.csv'), 'images_per_second')).to.deep.equal(csvRowsWithout(path.join(reference.folder, 'metrics.csv'), 'images_per_second'));
    expect(csvRowsWithout(path.join(folder, 'evals.csv'), 'seconds')).to.deep.equal(csvRowsWithout(path.join(reference.folder, 'evals.csv'), 'seconds'));
    expect(fs.readdirSync(path.join(folder, 'checkpoints'))).to.deep.equal([]);
  });

  it('refuses bad specs with one line naming the field', () => {
    expect(problems(dinoSpec({ objective: 'byol' }))).to.deep.equal([`objective: expected one of 'supervised', 'dino', got "byol"`]);
    expect(problems(dinoSpec({ dino: { crops: { localSize: 10 } } }))).to.deep.equal(['dino.crops.localSize: 10 is not a multiple of architecture.patchSize 4']);
    expect(problems(dinoSpec({ dino: { outDim: 1 } }))).to.deep.equal(['dino.outDim: K must be at least 2 prototypes, got 1']);
    expect(problems(dinoSpec({ dino: { teacherMomentum: 1.5 } }))).to.deep.equal(['dino.teacherMomentum: expected a number in [0, 1], got 1.5']);
    expect(problems(dinoSpec({ dino: { teacherMomentum: -0.1 } }))).to.deep.equal(['dino.teacherMomentum: expected a number in [0, 1], got -0.1']);
    expect(problems(dinoSpec({ dino: { koleo: -0.1 } }))[0]).to.match(/^dino\.koleo: /);
    expect(problems(dinoSpec({ dino: { crops: { interpolation: 'nearest' } } }))[0]).to.match(/^dino\.crops\.interpolation: .*bilinear.*bicubic.*"nearest"/);
    expect(problems(dinoSpec({ dino: { augment: { colorJitter: 'torch' } } }))[0]).to.match(/^dino\.augment\.colorJitter: .*pil.*float.*"torch"/);
    expect(problems(dinoSpec({ dino: { views: 'uint8' } }))[0]).to.match(/^dino\.views: .*pil.*float.*"uint8"/);
    expect(problems(dinoSpec({ dino: { init: 'xavier' } }))[0]).to.match(/^dino\.init: .*dino.*vitpeft.*"xavier"/);
    expect(problems(dinoSpec({ dino: { positionResample: 'nearest' } }))[0]).to.match(/^dino\.positionResample: .*dino.*timm.*"nearest"/);
    expect(problems(dinoSpec({ dino: { views: 'float', crops: { interpolation: 'bilinear' }, augment: { colorJitter: 'float' } } }))).to.deep.equal([
      "dino.crops.interpolation: applies to the 'pil' views only; dino.views 'float' samples its crops bilinearly",
      "dino.augment.colorJitter: applies to the 'pil' views only; dino.views 'float' jitters on floats",
    ]);
    expect(problems(dinoSpec({ dino: { scheduleSteps: 3 } }))).to.deep.equal(['dino.scheduleSteps: the schedules\' 3 steps are fewer than train.steps 8; expected at least 8']);
    expect(problems(dinoSpec({ train: { steps: 4, batchSize: 8, lr: 0.001, optimizer: 'sgd' } }))).to.deep.equal([`train.optimizer: the 'dino' objective trains with 'adamw', got 'sgd'`]);
    const supervised = { ...dinoSpec(), objective: undefined, data: { train: 'mnist:train' } };
    expect(problems(supervised)).to.include('data.test: the supervised objective needs a test split');
    expect(problems(dinoSpec())).to.deep.equal([]);
  });

  it('the example pipelines/pretrain-dino-digits.json decodes; the supervised pretrain-digits.json stays supervised', () => {
    const example = loadPretrainFile(path.join(REPO_ROOT, 'pipelines', 'pretrain-dino-digits.json')).spec;
    expect(example.objective).to.equal('dino');
    expect(example.dino?.augment?.flip).to.equal(false);
    // The monitor the recipe was chosen on is a validation split of the train images, never the test split.
    expect(example.data.retention).to.deep.equal({ bank: 'mnist:train?classes=0-4&perClass=400', query: 'mnist:train?classes=0-4&skipPerClass=600' });
    expect(example.dino?.batchNorm).to.equal(true);
    expect(loadPretrainFile(path.join(REPO_ROOT, 'pipelines', 'pretrain-digits.json')).spec.objective).to.equal(undefined);
  });

  it("a tiny DINO run on real digits (width 32, 2 blocks, 60 steps, DINOv2's KoLeo 0.3) lifts its teacher's k-NN above the random init's", async () => {
    // Labels only measure: 200 train digits 0-4 of each class train, k-NN of 100 others per class
    // against a bank of the first 100. Measured here (DINO's initialisation, the default): 58.64% at
    // init, 63.46% after 60 steps; with koleo 0 the same run ends at 54.82%. (With "init": "vitpeft":
    // 59.80% and 63.79%, 59.14% without KoLeo; its seeds 2-4 rose by 5.6, 1.2 and 6.2 points.)
    const folder = tempFolder('vitpeft-dino-rise-');
    const file = path.join(folder, 'rise.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'rise',
        objective: 'dino',
        architecture: { patchSize: 7, width: 32, depth: 2, heads: 2, mlpHidden: 64 },
        data: { train: 'mnist:train?classes=0-4&perClass=200', retention: { bank: 'mnist:train?classes=0-4&perClass=100', query: 'mnist:train?classes=0-4&skipPerClass=700' } },
        preprocess: { size: 28, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
        train: { steps: 60, batchSize: 32, lr: 0.002, warmupSteps: 10, schedule: 'cosine', seed: 1 },
        dino: {
          outDim: 128, hiddenDim: 128, bottleneckDim: 32, batchNorm: true, freezeLastLayerSteps: 10, koleo: 0.3,
          teacherTemperature: { start: 0.04, end: 0.04, warmupSteps: 0 }, teacherMomentum: 0.99,
          crops: { localCrops: 2, localSize: 14, localScale: [0.2, 0.4] }, augment: { flip: false, blurSigma: [0.1, 1] },
        },
        evaluate: { every: 60, batchSize: 256 },
        output: 'rise.safetensors',
      }),
    );
    const outDir = path.join(folder, 'run');
    expect((await runPretraining(file, outDir)).status).to.equal('ok');
    const knn = (parse(fs.readFileSync(path.join(outDir, 'evals.csv'), 'utf8'), { columns: true }) as Array<{ step: string; knn20: string }>).map((row) => [Number(row.step), Number(row.knn20)]);
    expect(knn.map(([step]) => step)).to.deep.equal([0, 60]);
    expect(knn[1][1], `k-NN@20 ${knn[0][1]}% at init, ${knn[1][1]}% after 60 steps`).to.be.greaterThan(knn[0][1] + 2);
  });
});
