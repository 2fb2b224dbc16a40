// DINO's pieces against hand computations: the loss over view pairs, the centre's EMA, the
// schedules at their ends, the teacher as the exact EMA of the student's recorded weights, the
// frozen last layer, per-parameter clipping, AdamW's decay groups, the multi-crop views'
// determinism, and a step that leaves no tensor behind.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { AdamW } from '../../stages/trainer/optimizer';
import { dinoLoss, koleoLoss, teacherDistribution, teacherEntropies, updatedCenter } from '../../stages/trainer/dino/loss';
import { batchNormalize } from '../../stages/trainer/dino/head';
import { DinoModels } from '../../stages/trainer/dino/models';
import { DINO_RESAMPLE, TIMM_RESAMPLE } from '../../models/vit/posEmbed';
import { MultiCrop } from '../../stages/trainer/dino/multiCrop';
import { continuousCropBox, jitterFloat, sampleBox, solarizeFloat } from '../../stages/trainer/dino/floatViews';
import { createRandom } from '../../common/random';
import { adjustBrightness, adjustBrightnessContrast, adjustContrast } from '../../stages/trainer/dino/photometric';
import { cosineSchedule, teacherMomentum, teacherTemperature } from '../../stages/trainer/dino/schedules';
import { DinoSession, clipEachByNorm, decayed } from '../../stages/trainer/dino/session';
import { DINO_DEFAULTS, DinoSettings } from '../../stages/trainer/dino/settings';
import { maxAbsDifference, tensorLeak } from '../helpers/tensors';

function softmax(row: readonly number[], temperature: number): number[] {
  const scaled = row.map((v) => v / temperature);
  const max = Math.max(...scaled);
  const exps = scaled.map((v) => Math.exp(v - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / total);
}

/**
 * DINO's loss in float64, pair by pair: for teacher global view t and student view v != t, the
 * batch mean of -softmax((teacher - centre) / tauT) . log softmax(student / tauS), averaged over the pairs.
 */
function handLoss(student: number[][], teacher: number[][], center: number[], views: number, tauS: number, tauT: number): { loss: number; pairs: number } {
  const batch = teacher.length / 2;
  const q = teacher.map((row) => softmax(row.map((v, k) => v - center[k]), tauT));
  const logP = student.map((row) => softmax(row, tauS).map(Math.log));
  let total = 0;
  let pairs = 0;
  for (const t of [0, 1]) {
    for (let v = 0; v < views; v++) {
      if (v === t) continue;
      pairs++;
      for (let b = 0; b < batch; b++) total -= q[t * batch + b].reduce((sum, qk, k) => sum + qk * logP[v * batch + b][k], 0) / batch;
    }
  }
  return { loss: total / pairs, pairs };
}

const SETTINGS: DinoSettings = {
  ...DINO_DEFAULTS,
  outDim: 16,
  hiddenDim: 24,
  bottleneckDim: 8,
  freezeLastLayerSteps: 0,
  teacherTemperature: { start: 0.04, end: 0.07, warmupSteps: 2 },
  crops: { globalScale: [0.4, 1], localCrops: 2, localSize: 4, localScale: [0.05, 0.4] },
  augment: { ...DINO_DEFAULTS.augment, flip: false },
};
const CONFIG = { imageSize: 8, patchSize: 4, inChannels: 3, width: 16, depth: 1, heads: 2, mlpHidden: 32, layerNormEps: 1e-6 };
const TRAIN = { steps: 6, batchSize: 2, seed: 1, lr: 0.01, warmupSteps: 1, schedule: 'cosine' as const };

function views(seed: number): { globals: tf.Tensor4D; locals: tf.Tensor4D } {
  return { globals: tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', seed) as tf.Tensor4D, locals: tf.randomNormal([4, 4, 4, 3], 0, 1, 'float32', seed + 1) as tf.Tensor4D };
}

describe('DINO: loss, schedules, teacher EMA, session', () => {
  it('the loss is the mean over pairs (teacher global t, student view s != t) of the cross-entropy, by hand', () => {
    // batch 2, K 3, views: 2 global + 1 local
    const teacher = [[1, 0, 0.5], [0.2, 0.1, 0], [0, 1, 0], [0.3, -0.2, 0.4]];
    const student = [[0.5, 0.1, -0.3], [0, 0, 1], [1, 2, 0], [0.3, 0.3, 0.3], [-1, 0.5, 0.2], [0.9, -0.4, 0]];
    const center = [0.1, -0.1, 0.05];
    const [tauS, tauT] = [0.1, 0.05];
    const { loss: expected, pairs } = handLoss(student, teacher, center, 3, tauS, tauT);
    const [s, t, c] = [tf.tensor2d(student), tf.tensor2d(teacher), tf.tensor2d([center])];
    const loss = dinoLoss(s, t, c, { views: 3, studentTemperature: tauS, teacherTemperature: tauT });
    expect(pairs).to.equal(4);
    expect(loss.dataSync()[0]).to.be.closeTo(expected, 1e-4);
    expect(() => dinoLoss(s, t, c, { views: 4, studentTemperature: tauS, teacherTemperature: tauT })).to.throw(/do not split into 4 views/);
    tf.dispose([s, t, c, loss]);
  });

  it("the loss value at the shipped recipe's size (8 views of 64, K 1,024: 524,288 terms of one size, as early in a run) is the float64 sum's to 2e-6", () => {
    const [views, batch, classes, tauS, tauT] = [8, 64, 1024, 0.1, 0.04];
    const s = tf.randomNormal([views * batch, classes], 0, 0.05, 'float32', 11) as tf.Tensor2D;
    const t = tf.randomNormal([2 * batch, classes], 0, 0.05, 'float32', 12) as tf.Tensor2D;
    const c = tf.randomNormal([1, classes], 0, 0.02, 'float32', 13);
    const { loss: expected } = handLoss(s.arraySync(), t.arraySync(), (c.arraySync() as number[][])[0], views, tauS, tauT);
    const loss = dinoLoss(s, t, c, { views, studentTemperature: tauS, teacherTemperature: tauT });
    expect(Math.abs(loss.dataSync()[0] - expected) / expected).to.be.below(2e-6);
    tf.dispose([s, t, c, loss]);
  });

  it('centring: c <- 0.9 c + 0.1 mean of the teacher rows; the collapse monitor: row entropy log K when uniform, batch-mean entropy log 2 on two prototypes', () => {
    const center = tf.tensor2d([[1, 0, -1]]);
    const logits = tf.tensor2d([[2, 4, 0], [0, 2, 2]]);
    const next = updatedCenter(center, logits, 0.9);
    expect(maxAbsDifference(next, [0.9 + 0.1, 0.3, -0.9 + 0.1])).to.be.below(1e-6);
    const uniform = teacherDistribution(tf.tensor2d([[3, 3, 3, 3]]), tf.zeros([1, 4]), 0.04);
    expect(teacherEntropies(uniform).rows).to.be.closeTo(Math.log(4), 1e-6);
    const peaked = teacherDistribution(tf.tensor2d([[10, 0, 0, 0], [0, 10, 0, 0]]), tf.zeros([1, 4]), 0.04);
    const spread = teacherEntropies(peaked);
    expect(spread.rows).to.be.below(1e-6);
    expect(spread.batch, 'two images on two prototypes').to.be.closeTo(Math.log(2), 1e-5);
    tf.dispose([center, logits, next, uniform, peaked]);
  });

  it('schedules at step 0, at the end of warm-up and at the last step', () => {
    const steps = 100;
    expect(cosineSchedule(0.04, 0.4, 0, steps)).to.be.closeTo(0.04, 1e-15);
    expect(cosineSchedule(0.04, 0.4, steps / 2, steps)).to.be.closeTo(0.22, 1e-12);
    expect(cosineSchedule(0.04, 0.4, steps - 1, steps)).to.be.closeTo(0.4 - 0.18 * (1 - Math.cos(Math.PI / steps)), 1e-12);
    expect(teacherMomentum(0.996, 0, steps)).to.be.closeTo(0.996, 1e-15);
    expect(teacherMomentum(0.996, steps - 1, steps)).to.be.closeTo(1 - 0.002 * (1 - Math.cos(Math.PI / steps)), 1e-12);
    expect(teacherMomentum(0.996, steps, steps)).to.equal(1);
    const temperature = { start: 0.04, end: 0.07, warmupSteps: 30 };
    expect(teacherTemperature(temperature, 0)).to.equal(0.04);
    expect(teacherTemperature(temperature, 15)).to.be.closeTo(0.055, 1e-12);
    expect(teacherTemperature(temperature, 30)).to.equal(0.07);
    expect(teacherTemperature(temperature, steps - 1)).to.equal(0.07);
  });

  it('scheduleSteps lays the cosines over a longer schedule than the run: the run is its first steps', () => {
    const models = DinoModels.init(CONFIG, SETTINGS, 5);
    const whole = new DinoSession({ models, dino: SETTINGS, train: { ...TRAIN, steps: 60 } });
    const first = new DinoSession({ models, dino: { ...SETTINGS, scheduleSteps: 60 }, train: TRAIN });
    const own = new DinoSession({ models, dino: SETTINGS, train: TRAIN });
    for (const step of [0, 1, 3, 5]) expect(first.schedules(step), `step ${step}`).to.deep.equal(whole.schedules(step));
    // At the run's last step its own 6-step cosines are nearly annealed; the 60-step schedule's are not.
    expect(own.schedules(5).lr).to.be.below(0.1 * TRAIN.lr);
    expect(first.schedules(5).lr).to.be.closeTo(TRAIN.lr * 0.5 * (1 + Math.cos((Math.PI * 4) / 59)), 1e-12);
    expect(first.schedules(5).teacherMomentum).to.be.closeTo(teacherMomentum(SETTINGS.teacherMomentum, 5, 60), 1e-15);
    expect(first.schedules(5).teacherMomentum).to.be.below(own.schedules(5).teacherMomentum);
    models.dispose();
    tf.dispose([whole.center, first.center, own.center]);
  });

  it('the teacher is exactly the EMA of the student weights recorded after each step; the centre moves, the step leaks nothing', () => {
    const models = DinoModels.init(CONFIG, SETTINGS, 5);
    const session = new DinoSession({ models, dino: SETTINGS, train: TRAIN });
    const read = (named: ReturnType<DinoModels['studentParameters']>) => named.map(([, v]) => Float64Array.from(v.dataSync()));
    let expected = read(models.studentParameters());
    expect(maxAbsDifference(models.teacherParameters()[3][1], models.studentParameters()[3][1]), 'the teacher starts as the student').to.equal(0);
    for (let step = 0; step < 4; step++) {
      const momentum = session.schedules(step).teacherMomentum;
      const { globals, locals } = views(10 + step);
      const metrics = session.step(globals, locals);
      tf.dispose([globals, locals]);
      expect(metrics.step).to.equal(step + 1);
      expect(Number.isFinite(metrics.loss)).to.equal(true);
      expect(metrics.teacherMomentum).to.equal(momentum);
      const student = read(models.studentParameters());
      expected = expected.map((teacher, i) => teacher.map((value, j) => momentum * value + (1 - momentum) * student[i][j]));
    }
    const teacher = models.teacherParameters();
    const worst = Math.max(...teacher.map(([, variable], i) => maxAbsDifference(variable, expected[i])));
    expect(worst).to.be.below(1e-6);
    expect(maxAbsDifference(models.teacherParameters()[3][1], models.studentParameters()[3][1]), 'the teacher lags the student').to.be.above(0);
    expect(Math.max(...session.center.dataSync().map(Math.abs))).to.be.above(0);
    expect(
      tensorLeak(() => {
        const { globals, locals } = views(99);
        session.step(globals, locals);
        tf.dispose([globals, locals]);
      }),
      'tensors left by a DINO step after warm-up',
    ).to.equal(0);
    session.dispose();
    models.dispose();
  });

  it('the last layer does not train during freezeLastLayerSteps; the gain is fixed with normLastLayer and trains without', () => {
    for (const normLastLayer of [true, false]) {
      const settings = { ...SETTINGS, normLastLayer, freezeLastLayerSteps: 2 };
      const models = DinoModels.init(CONFIG, settings, 7);
      const session = new DinoSession({ models, dino: settings, train: TRAIN });
      expect(models.studentHead.lastLayer.length).to.equal(normLastLayer ? 1 : 2);
      const initial = models.studentHead.lastV.dataSync().slice();
      for (let step = 0; step < 3; step++) {
        const { globals, locals } = views(20 + step);
        session.step(globals, locals);
        tf.dispose([globals, locals]);
        const moved = maxAbsDifference(models.studentHead.lastV, initial) > 0;
        expect(moved, `last layer moved after step ${step + 1}`).to.equal(step >= 2);
      }
      session.dispose();
      models.dispose();
    }
  });

  it("initialises as DINO unless told otherwise: its weights, and its local views' position embeddings resampled without antialiasing", () => {
    const bound = 1 / Math.sqrt(SETTINGS.bottleneckDim);
    const read = (models: DinoModels, name: string): number[] => Array.from(models.studentParameters().find(([n]) => n === name)?.[1].dataSync() ?? []);
    const dino = DinoModels.init(CONFIG, SETTINGS, 3);
    const vitpeft = DinoModels.init(CONFIG, { ...SETTINGS, init: 'vitpeft', positionResample: 'timm' }, 3);
    try {
      for (const network of [dino.student, dino.teacher]) expect(network.posEmbedResample).to.deep.equal(DINO_RESAMPLE);
      for (const network of [vitpeft.student, vitpeft.teacher]) expect(network.posEmbedResample).to.deep.equal(TIMM_RESAMPLE);
      // The patch embedding's bias: PyTorch's Conv2d default (uniform, 1/sqrt(48) = 0.144 here) against zero.
      expect(Math.max(...read(dino, 'patch_embed.proj.bias').map(Math.abs))).to.be.above(0.02);
      expect(read(vitpeft, 'patch_embed.proj.bias').every((v) => v === 0)).to.equal(true);
      // The last layer's direction: PyTorch's Linear default (uniform in +-1/sqrt(8) = 0.354) against normal 0.02 cut at 0.04.
      const lastDino = read(dino, 'head.last_layer.weight_v').map(Math.abs);
      expect(Math.max(...lastDino)).to.be.above(0.2).and.at.most(bound);
      expect(Math.max(...read(vitpeft, 'head.last_layer.weight_v').map(Math.abs))).to.be.at.most(0.04);
      // The teacher starts as the student's copy under either scheme.
      for (const models of [dino, vitpeft]) {
        models.studentParameters().forEach(([name, variable], i) => expect(maxAbsDifference(variable, Array.from(models.teacherParameters()[i][1].dataSync())), name).to.equal(0));
      }
    } finally {
      dino.dispose();
      vitpeft.dispose();
    }
  });

  it("the head's batch normalisation (use_bn_in_head): columns standardised by the batch's mean and biased variance, PyTorch's names, applied once over every view", () => {
    const x = tf.tensor2d([[1, 10], [2, 10], [6, 13]]);
    const out = batchNormalize(x, tf.tensor1d([2, 1]), tf.tensor1d([0, 0.5]));
    // column 0: mean 3, variance (4 + 1 + 9) / 3; column 1: mean 11, variance (1 + 1 + 4) / 3
    const s0 = Math.sqrt(14 / 3 + 1e-5);
    const s1 = Math.sqrt(2 + 1e-5);
    expect(maxAbsDifference(out, [(2 * -2) / s0, -1 / s1 + 0.5, (2 * -1) / s0, -1 / s1 + 0.5, (2 * 3) / s0, 2 / s1 + 0.5])).to.be.below(1e-5);
    tf.dispose([x, out]);
    const settings = { ...SETTINGS, batchNorm: true };
    const models = DinoModels.init(CONFIG, settings, 3);
    const names = models.studentParameters().map(([name]) => name).filter((name) => name.startsWith('head.'));
    expect(names).to.deep.equal(['head.mlp.0.weight', 'head.mlp.0.bias', 'head.mlp.1.weight', 'head.mlp.1.bias', 'head.mlp.3.weight', 'head.mlp.3.bias', 'head.mlp.4.weight', 'head.mlp.4.bias', 'head.mlp.6.weight', 'head.mlp.6.bias', 'head.last_layer.weight_v']);
    // One head call over globals and locals together: a view's logits depend on the other views through the batch statistics.
    const { globals, locals } = views(40);
    const together = models.studentLogits(globals, locals);
    const alone = models.studentLogits(globals, null);
    expect(together.shape).to.deep.equal([8, settings.outDim]);
    expect(maxAbsDifference(tf.slice(together, 0, 4), alone)).to.be.above(1e-4);
    const session = new DinoSession({ models, dino: settings, train: TRAIN });
    session.step(globals, locals); // the warm-up's first step has learning rate 0
    session.step(globals, locals);
    const gammaAt = models.studentParameters().findIndex(([name]) => name === 'head.mlp.1.weight');
    expect(maxAbsDifference(models.studentParameters()[gammaAt][1], [...Array(settings.hiddenDim)].map(() => 1)), 'the scale trains').to.be.above(0);
    expect(
      tensorLeak(() => {
        session.step(globals, locals);
      }),
      'tensors left by a DINO step with batch normalisation',
    ).to.equal(0);
    tf.dispose([globals, locals, together, alone]);
    session.dispose();
    models.dispose();
  });

  it('clips each gradient to the norm on its own; decay groups leave biases, norms, cls token and position embedding undecayed', () => {
    const grads = [tf.tensor1d([3, 4]), tf.tensor1d([0.3, 0.4])];
    const clipped = clipEachByNorm(grads, 1);
    expect(maxAbsDifference(clipped[0], [0.6, 0.8])).to.be.below(1e-5);
    expect(maxAbsDifference(clipped[1], grads[1])).to.equal(0);
    const models = DinoModels.init(CONFIG, SETTINGS, 1);
    const undecayed = models.studentParameters().filter(([name, variable]) => !decayed(name, variable)).map(([name]) => name);
    expect(undecayed).to.include.members(['cls_token', 'pos_embed', 'patch_embed.proj.bias', 'blocks.0.norm1.weight', 'norm.bias', 'head.mlp.0.bias']);
    expect(undecayed).not.to.include.members(['patch_embed.proj.weight', 'blocks.0.attn.qkv.weight', 'head.last_layer.weight_v']);
    tf.dispose([...grads, ...clipped]);
    models.dispose();
  });

  it('AdamW: a per-step weight decay and per-variable decay flags', () => {
    const [a, b] = [tf.variable(tf.tensor1d([1, 2])), tf.variable(tf.tensor1d([1, 2]))];
    const adamw = new AdamW([a, b], [0.9, 0.999], 1e-8, 0.5, [true, false]);
    const zeros = [tf.zeros([2]), tf.zeros([2])];
    adamw.apply(zeros, 0.1, 0.2);
    expect(maxAbsDifference(a, [0.98, 1.96])).to.be.below(1e-6);
    expect(maxAbsDifference(b, [1, 2])).to.equal(0);
    adamw.apply(zeros, 0.1);
    expect(maxAbsDifference(a, [0.98 * 0.95, 1.96 * 0.95])).to.be.below(1e-6);
    expect(() => new AdamW([a], [0.9, 0.999], 1e-8, 0.5, [true, false])).to.throw(/2 decay flags for 1 variables/);
    tf.dispose([a, b, ...zeros]);
    adamw.dispose();
  });

  it("KoLeo (DINOv2): minus the mean log distance to each unit row's nearest other row, by hand; its gradient spreads close rows apart", () => {
    // Unit rows a = (1, 0), b = (0, 1), c = (1, 1)/sqrt 2: a's and b's neighbour is c, c's is a
    // (the first of a tie); every distance is sqrt(2 - sqrt 2).
    const features = tf.tensor2d([[2, 0], [0, 3], [1, 1]]);
    const expected = -Math.log(Math.sqrt(2 - Math.SQRT2));
    const loss = koleoLoss(features);
    expect(loss.dataSync()[0]).to.be.closeTo(expected, 1e-5);
    // Two rows nearly alike and one far: a gradient step on the loss moves the close pair apart.
    const points = tf.variable(tf.tensor2d([[1, 0.05], [1, -0.05], [-1, 0.3]]));
    const gap = () => tf.tidy(() => tf.norm(tf.sub(points.slice([0, 0], [1, 2]).div(points.slice([0, 0], [1, 2]).norm()), points.slice([1, 0], [1, 2]).div(points.slice([1, 0], [1, 2]).norm()))).dataSync()[0]);
    const before = gap();
    const { grads } = tf.variableGrads(() => koleoLoss(points as tf.Tensor2D), [points]);
    points.assign(tf.sub(points, tf.mul(grads[points.name], 0.01)));
    expect(gap()).to.be.greaterThan(before);
    expect(() => koleoLoss(tf.tensor2d([[1, 2]]))).to.throw('at least 2 rows');
    tf.dispose([features, loss, points, ...Object.values(grads)]);
  });

  it('a step with koleo > 0 adds koleo x (KoLeo of global view 1 + of view 2) on the backbone class tokens to the loss, and leaks nothing', () => {
    const first: number[] = [];
    let regulariser = 0;
    for (const koleo of [0, 0.1]) {
      const settings = { ...SETTINGS, koleo };
      // The same seed: both start from the same weights, so their first losses differ by the regulariser alone.
      const models = DinoModels.init(CONFIG, settings, 11);
      const session = new DinoSession({ models, dino: settings, train: TRAIN });
      const { globals, locals } = views(77);
      if (koleo > 0) {
        regulariser = tf.tidy(() => {
          const { globalFeatures } = models.studentForward(globals, locals);
          const [one, two] = tf.split(globalFeatures, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
          return tf.add(koleoLoss(one), koleoLoss(two)).dataSync()[0];
        });
      }
      first.push(session.step(globals, locals).loss);
      expect(tensorLeak(() => void session.step(globals, locals))).to.equal(0);
      tf.dispose([globals, locals]);
      session.dispose();
      models.dispose();
    }
    expect(regulariser).to.be.greaterThan(0);
    expect(first[1] - first[0]).to.be.closeTo(0.1 * regulariser, 1e-5);
  });

  it('multi-crop: 2 global and N local views per image, a pure function of (seed, epoch, index)', () => {
    const crops = new MultiCrop(SETTINGS, 8, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, 3);
    const pixels = Float32Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => ((i * 37) % 256) / 255);
    const input = { pixels, shape: [2, 8, 8, 3] as const, indices: [5, 9], epoch: 0 };
    const first = crops.cropBatch(input);
    expect(first.globals.length).to.equal(2 * 2 * 8 * 8 * 3);
    expect(first.locals.length).to.equal(2 * 2 * 4 * 4 * 3);
    expect(Math.max(...first.globals)).to.be.at.most(1);
    expect(Math.min(...first.globals)).to.be.at.least(-1);
    const again = crops.cropBatch(input);
    expect(Buffer.from(again.globals.buffer).equals(Buffer.from(first.globals.buffer))).to.equal(true);
    expect(Buffer.from(again.locals.buffer).equals(Buffer.from(first.locals.buffer))).to.equal(true);
    const nextEpoch = crops.cropBatch({ ...input, epoch: 1 });
    expect(Buffer.from(nextEpoch.globals.buffer).equals(Buffer.from(first.globals.buffer))).to.equal(false);
    // Bilinear crops and the float jitter are other views of the same draws.
    const other = new MultiCrop({ ...SETTINGS, crops: { ...SETTINGS.crops, interpolation: 'bilinear' }, augment: { ...SETTINGS.augment, jitter: 1, colorJitter: 'float' } }, 8, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, 3).cropBatch(input);
    expect(Buffer.from(other.globals.buffer).equals(Buffer.from(first.globals.buffer))).to.equal(false);
    expect(Math.max(...other.globals)).to.be.at.most(1);
  });

  it("views 'float': the crop is grid_sample's bilinear sampling of a continuous box (zeros outside), the jitter unrounded", () => {
    const grey = (values: number[], height: number, width: number) => ({ values: Float32Array.from(values), height, width, channels: 1 });
    // The whole image at its own size: the samples fall on the pixel centres.
    const image = grey([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], 3, 3);
    expect(Array.from(sampleBox(image, { centerX: 0, centerY: 0, width: 1, height: 1 }, 3).values)).to.deep.equal(Array.from(image.values));
    // Rows [a, b] twice; a centred half-width box at 2 px samples x = 0.25 and 0.75: 0.75 a + 0.25 b and 0.25 a + 0.75 b.
    const pair = grey([0.2, 1, 0.2, 1], 2, 2);
    const half = sampleBox(pair, { centerX: 0, centerY: 0, width: 0.5, height: 1 }, 2).values;
    expect(half[0]).to.be.closeTo(0.4, 1e-6);
    expect(half[1]).to.be.closeTo(0.8, 1e-6);
    // The whole image at 4 px samples x, y = -0.25 first and x = 1.25 last: a quarter of each side's weight falls outside, on zeros.
    const wide = sampleBox(pair, { centerX: 0, centerY: 0, width: 1, height: 1 }, 4).values;
    expect(wide[0]).to.be.closeTo(0.75 * 0.75 * 0.2, 1e-6);
    expect(wide[3]).to.be.closeTo(0.75 * 0.75 * 1, 1e-6);
    // Boxes stay inside the image, their sides fractions of at most 1.
    const random = createRandom(5);
    for (let i = 0; i < 200; i++) {
      const box = continuousCropBox([0.2, 1], [3 / 4, 4 / 3], random);
      expect(box.width).to.be.within(0, 1);
      expect(Math.abs(box.centerX) + box.width).to.be.at.most(1 + 1e-12);
      expect(Math.abs(box.centerY) + box.height).to.be.at.most(1 + 1e-12);
    }
    // A white quarter, brightened 1.4 then contrast 0.6 about 0.35: 0.35 + 0.6 (1.4 - 0.35) = 0.98 and 0.14, not rounded to 8 bits.
    const jittered = jitterFloat(grey([1, 0, 0, 0], 2, 2), 1.4, 0.6).values;
    expect(jittered[0]).to.be.closeTo(0.98, 1e-6);
    expect(jittered[1]).to.be.closeTo(0.14, 1e-6);
    expect(Array.from(solarizeFloat(grey([0.25, 0.5, 0.75], 1, 3)).values)).to.deep.equal([0.25, 0.5, 0.25]);
  });

  it("views 'float': a pure function of (seed, epoch, index), other pixels than the 8-bit views, not rounded to 8 bits", () => {
    const pixels = Float32Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => ((i * 37) % 256) / 255);
    const input = { pixels, shape: [2, 8, 8, 3] as const, indices: [5, 9], epoch: 0 };
    const normalization = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
    const float = new MultiCrop({ ...SETTINGS, views: 'float' }, 8, normalization, 3);
    const first = float.cropBatch(input);
    expect(first.globals.length).to.equal(2 * 2 * 8 * 8 * 3);
    expect(first.locals.length).to.equal(2 * 2 * 4 * 4 * 3);
    expect(Math.max(...first.globals, ...first.locals)).to.be.at.most(1);
    expect(Math.min(...first.globals, ...first.locals)).to.be.at.least(-1);
    expect(Buffer.from(float.cropBatch(input).globals.buffer).equals(Buffer.from(first.globals.buffer))).to.equal(true);
    const pil = new MultiCrop(SETTINGS, 8, normalization, 3).cropBatch(input);
    expect(Buffer.from(pil.globals.buffer).equals(Buffer.from(first.globals.buffer))).to.equal(false);
    const level = (v: number) => (v * 0.5 + 0.5) * 255;
    const offGrid = (values: Float32Array) => values.filter((v) => Math.abs(level(v) - Math.round(level(v))) > 1e-3).length;
    expect(offGrid(pil.globals)).to.equal(0);
    expect(offGrid(first.globals)).to.be.greaterThan(first.globals.length / 2);
  });

  it("colorJitter 'float': brightness then contrast about the brightened mean, one clamp at the end; 'pil' clamps between them", () => {
    // A white stroke on black: mean grey 255 / 4.
    const image = { pixels: Uint8Array.from([255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0]), height: 2, width: 2, channels: 3 };
    const float = adjustBrightnessContrast(image, 1.4, 0.6);
    // m = 1.4 x 63.75 = 89.25; stroke 89.25 + 0.6 (357 - 89.25) = 249.9 -> 250; black 89.25 x 0.4 = 35.7 -> 36.
    expect(Array.from(float.pixels)).to.deep.equal([250, 250, 250, 36, 36, 36, 36, 36, 36, 36, 36, 36]);
    // PIL's order: brightness clips the stroke at 255, contrast about the rounded mean 64: 64 + 0.6 x 191 = 178.6 -> 179.
    const pil = adjustContrast(adjustBrightness(image, 1.4), 0.6);
    expect(Array.from(pil.pixels)).to.deep.equal([179, 179, 179, 26, 26, 26, 26, 26, 26, 26, 26, 26]);
  });
});
