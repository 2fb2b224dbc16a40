import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { MethodResult } from '../../common/events';
import { resultsCsv } from '../../stages/reporter/stage';
import { CLOSE_CALL_POINTS, chooseLearningRates, followUpCommand, freshFolder, pipelineFileOf } from '../../scripts/chooseLearningRates';
import { barScores } from '../../scripts/knnBar';
import { writeReplay } from '../../scripts/dinoReplay';
import { lastValueFrom, take, toArray } from 'rxjs';
import { PRETRAIN_DINO_DIGITS } from '../../pipelines/builtin';
import { resolveDino } from '../../pipelines/dinoRecipe';
import { transformFor } from '../../pipelines/prepare';
import { loadPretrainFile } from '../../pipelines/pretrainSpec';
import { batches } from '../../stages/dataset/batches';
import { openDataUri } from '../../stages/dataset/dataUri';
import { MultiCrop } from '../../stages/trainer/dino/multiCrop';
import { END, SECTIONS, START, markers, updateReadme } from '../../scripts/updateReadme';
import { tempFolder } from '../helpers/datasetFixtures';

function result(method: string, newTaskAccuracy: number | undefined, status: MethodResult['status'] = 'ok', retentionAccuracy = 90, seed = 0): MethodResult {
  return { method, seed, trainableParams: 10, steps: 5, status, newTaskAccuracy, retentionAccuracy, meanAccuracy: newTaskAccuracy === undefined ? undefined : (newTaskAccuracy + retentionAccuracy) / 2, seconds: 1 };
}

function runFolder(results: MethodResult[], spec = { resolved: { knn: { headline: 10 } } }): string {
  const dir = tempFolder('vitpeft-scripts-');
  fs.writeFileSync(path.join(dir, 'results.csv'), resultsCsv('sweep', { retention: 95 }, results));
  fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
  return dir;
}

describe('scripts', () => {
  it('chooseLearningRates: best validation accuracy per method over several run folders, ties to the smaller rate, diverged runs ignored', () => {
    const first = runFolder([result('full@lr0.01', 80), result('full@lr0.1', 85), result('lora-r4@lr0.01', 70), result('lora-r4@lr0.1', 70)]);
    const second = runFolder([result('full@lr1', undefined, 'diverged'), result('lora-r4@lr1', 60), result('pretrained-like', 99)]);
    const choices = chooseLearningRates([first, second]);
    expect(choices.map((c) => [c.method, c.lr, c.accuracy])).to.deep.equal([
      ['full', 0.1, 85],
      ['lora-r4', 0.01, 70],
    ]);
    expect(choices[0].scores.map((s) => s.status)).to.deep.equal(['ok', 'ok', 'diverged']);
  });

  it('chooseLearningRates: averages seeds (a seed repeated in a later folder counts once), skips a rate where a seed failed, and names close calls with their follow-up run', () => {
    const sweep = runFolder([
      result('full@lr0.01', 80), result('full@lr0.1', 82), result('full@lr1', 60),
      result('lora-r4@lr0.01', 70), result('lora-r4@lr0.1', 90),
    ]);
    const seeds = runFolder([
      // seed 0 again with another score: the sweep's (first folder) counts
      result('full@lr0.01', 10, 'ok', 90, 0), result('full@lr0.01', 84, 'ok', 90, 1), result('full@lr0.01', 82, 'ok', 90, 2),
      result('full@lr0.1', 83, 'ok', 90, 0), result('full@lr0.1', 70, 'ok', 90, 1), result('full@lr0.1', undefined, 'diverged', 90, 2),
    ]);
    const before = chooseLearningRates([sweep]);
    expect(before.map((c) => [c.method, c.lr, c.closeCall?.lr])).to.deep.equal([
      ['full', 0.1, 0.01], // 82 vs 80: within CLOSE_CALL_POINTS on one seed
      ['lora-r4', 0.1, undefined], // 90 vs 70: clear
    ]);
    expect(82 - 80).to.be.at.most(CLOSE_CALL_POINTS);
    expect(followUpCommand(before, 'pipelines/sweep.json', 'out/sweep-seeds')).to.equal(
      'node bin/vitpeft.js run pipelines/sweep.json --only full@lr0.1,full@lr0.01 --seeds 3 --no-save-models --no-plots --out out/sweep-seeds',
    );
    const after = chooseLearningRates([sweep, seeds]);
    const full = after.find((c) => c.method === 'full')!;
    expect(full.lr).to.equal(0.01);
    expect(full.accuracy).to.be.closeTo((80 + 84 + 82) / 3, 1e-9);
    expect(full.scores.map((s) => [s.lr, s.seeds, s.status])).to.deep.equal([[0.01, 3, 'ok'], [0.1, 3, 'diverged'], [1, 1, 'ok']]);
    expect(full.closeCall).to.equal(undefined); // the runner-up (lr 1, 60) is far behind
    expect(followUpCommand(after.filter((c) => c.method === 'full'), 'p.json', 'o')).to.equal(undefined);
    // A second round: the best rate has its 3 seeds, the new runner-up one; only the runner-up runs, in a fresh folder.
    const round = chooseLearningRates([runFolder([result('linear@lr0.3', 89, 'ok', 90, 0), result('linear@lr0.3', 89, 'ok', 90, 1), result('linear@lr0.3', 89, 'ok', 90, 2), result('linear@lr1', 88.9)])]);
    expect(followUpCommand(round, 'p.json', 'o')).to.equal('node bin/vitpeft.js run p.json --only linear@lr1 --seeds 3 --no-save-models --no-plots --out o');
    const root = tempFolder('vitpeft-follow-');
    expect(freshFolder(path.join(root, 'sweep-seeds'))).to.equal(path.join(root, 'sweep-seeds'));
    fs.mkdirSync(path.join(root, 'sweep-seeds'));
    fs.mkdirSync(path.join(root, 'sweep-seeds-2'));
    expect(freshFolder(path.join(root, 'sweep-seeds'))).to.equal(path.join(root, 'sweep-seeds-3'));
  });

  it('pipelineFileOf: the pipeline a sweep ran, from its run record or, for a run in worker processes, its first shard\'s', () => {
    const single = tempFolder('vitpeft-record-');
    fs.writeFileSync(path.join(single, 'run.json'), JSON.stringify({ file: 'pipelines/one.json' }));
    expect(pipelineFileOf(single)).to.equal('pipelines/one.json');
    const parallel = tempFolder('vitpeft-record-');
    for (const shard of ['sweep-shard2of2', 'sweep-shard1of2']) {
      fs.mkdirSync(path.join(parallel, 'workers', shard), { recursive: true });
      fs.writeFileSync(path.join(parallel, 'workers', shard, 'run.json'), JSON.stringify({ file: `pipelines/${shard}.json` }));
    }
    expect(pipelineFileOf(parallel)).to.equal('pipelines/sweep-shard1of2.json');
    expect(pipelineFileOf(tempFolder('vitpeft-record-'))).to.equal(undefined);
  });

  it('updateReadme: replaces only the text between the markers with the run table and plot links', () => {
    const dir = runFolder([result('full', 88.5, 'ok', 70), result('linear', 75, 'ok', 95)]);
    const readme = `# title\nbefore\n${START}\nold\n${END}\nafter\n`;
    const updated = updateReadme(readme, dir, 301);
    expect(updated.startsWith('# title\nbefore\n')).to.equal(true);
    expect(updated.endsWith('\nafter\n')).to.equal(true);
    expect(updated).to.not.include('\nold\n');
    expect(updated).to.match(/retention \(k-NN@10\)/);
    expect(updated).to.match(/\nfull\s+10\s+88\.50\s+70\.00\s+79\.25/);
    expect(updated).to.include('took 5.0 minutes');
    expect(updated).to.include('docs/default-tradeoff.svg');
    expect(() => updateReadme('# no markers', dir)).to.throw(/markers/);
    // A second section (the supervised backbone's) is replaced on its own markers, the default's kept.
    const { start, end } = markers(SECTIONS.supervised);
    const both = updateReadme(`${START}\nold default\n${END}\n${start}\nold supervised\n${end}\n`, dir, 120, SECTIONS.supervised);
    expect(both).to.include('\nold default\n');
    expect(both).to.not.include('old supervised');
    expect(both).to.include('`vitpeft run pipelines/split-mnist-supervised.json` took 2.0 minutes');
    expect(both).to.include('docs/supervised-forgetting.svg');
  });

  it("dinoReplay: the initial student by name and the views of the pretraining's own batch stream, step by step", async () => {
    const dir = tempFolder('vitpeft-replay-');
    const initFile = path.join(dir, 'init.json');
    const viewsFile = path.join(dir, 'views.f32');
    await writeReplay(PRETRAIN_DINO_DIGITS, 2, initFile, viewsFile);
    const init = JSON.parse(fs.readFileSync(initFile, 'utf8')) as Record<string, { shape: number[]; data: number[] }>;
    expect(init.pos_embed.shape).to.deep.equal([1, 17, 64]);
    expect(init['head.last_layer.weight_v'].shape).to.deep.equal([128, 1024]);
    expect(init['blocks.5.mlp.fc2.weight'].data.length).to.equal(256 * 64);
    // What dinoPretrain.ts trains on: its batch stream (base pixels k/255) cut into views.
    const { spec } = loadPretrainFile(PRETRAIN_DINO_DIGITS);
    const source = await openDataUri(spec.data.train, { baseDir: path.dirname(PRETRAIN_DINO_DIGITS) });
    const stream = batches(source, { batchSize: 64, seed: spec.train.seed, epochs: Infinity, dropLast: true, transform: transformFor('native', 28, { mean: [0, 0, 0], std: [1, 1, 1] }) });
    const crops = new MultiCrop(resolveDino(spec), 28, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, spec.train.seed ?? 0);
    const expected: Buffer[] = [];
    for (const batch of await lastValueFrom(stream.pipe(take(2), toArray()))) {
      const views = crops.cropBatch({ pixels: batch.images.dataSync() as Float32Array, shape: batch.images.shape, indices: batch.indices, epoch: batch.epoch });
      expected.push(Buffer.from(views.globals.buffer), Buffer.from(views.locals.buffer));
      batch.dispose();
    }
    const written = fs.readFileSync(viewsFile);
    expect(written.length).to.equal(2 * 64 * (2 * 28 * 28 + 6 * 14 * 14) * 3 * 4);
    expect(written.equals(Buffer.concat(expected))).to.equal(true);
  });

  it('knnBar: the model, raw pixels as stored and as the ViT sees them, each with the same bank (the offset changes cosine k-NN)', () => {
    const tensors = tf.memory().numTensors;
    // Two-pixel images. Stored, every image points into the positive quadrant and the query of
    // class 1 ([0.3, 0.3]) is collinear with class 0's bank image; centred, it points away from it.
    const images = (rows: number[][], labels: number[]) => ({ pixels: tf.tensor4d(rows.flat(), [rows.length, 1, 2, 1]), labels: Int32Array.from(labels), numClasses: 2 });
    const bank = images([[0.9, 0.9], [0.2, 0.3]], [0, 1]);
    const query = images([[0.3, 0.3], [0.8, 0.8]], [1, 0]);
    const embed = (pixels: tf.Tensor4D) => tf.tidy(() => tf.neg(pixels).reshape([pixels.shape[0], 2]) as tf.Tensor2D);
    expect(barScores(bank, query, embed, { k: 1, mean: 0.5, std: 0.5 })).to.deep.equal({ model: 50, rawStored: 50, rawAsSeen: 100 });
    const centred = (pixels: tf.Tensor4D) => tf.tidy(() => pixels.sub(0.5).reshape([pixels.shape[0], 2]) as tf.Tensor2D);
    expect(barScores(bank, query, centred, { k: 1, mean: 0.5, std: 0.5 }).model).to.equal(100);
    tf.dispose([bank.pixels, query.pixels]);
    expect(tf.memory().numTensors, 'tensors left').to.equal(tensors);
  });
});
