// DINO self-supervised pretraining (`"objective": "dino"`) through the one job loop: a student
// and an EMA teacher of the same ViT, multi-crop views of the training images (labels never
// read), every step in metrics.csv with the schedules and the teacher's output entropy (the
// collapse monitor), a k-NN monitor of the teacher's features on data.retention every
// evaluate.every steps (evals.csv; labels used only to measure), DINO-state checkpoints, a stop
// request honoured at the next step, and --resume. The written model is the teacher's backbone
// (as DINO releases it): timm layout, no head, the recipe in its metadata; a resumed pretraining
// writes the same file, byte for byte, as an uninterrupted one.

import * as path from 'path';
import { Observable, defer, from, map, of } from 'rxjs';
import type { CheckpointEvent, EvalEvent, StepEvent } from '../common/events';
import { saveVit } from '../models/checkpoint/vitCheckpoint';
import { EvaluationData } from '../stages/evaluator/stage';
import { DinoModels } from '../stages/trainer/dino/models';
import { MultiCrop } from '../stages/trainer/dino/multiCrop';
import { DinoSession, DinoTrainSettings } from '../stages/trainer/dino/session';
import type { DinoSettings } from '../stages/trainer/dino/settings';
import { DinoStateFile } from '../stages/trainer/dino/state';
import { DinoTrainedStep, trainDino } from '../stages/trainer/dino/trainer';
import type { TrainedStep } from '../stages/trainer/stage';
import { HALF } from '../stages/dataset/transforms';
import { resolveDino } from './dinoRecipe';
import type { Stages } from './job';
import { dinoCheckpoint } from './loop/dinoCheckpoint';
import { LoopJob, runJobLoop } from './loop/jobLoop';
import { evaluationSchedule } from './loop/schedule';
import { transformFor } from './prepare';
import { LoadedPretrain, PretrainEndEvent, PretrainOptions, PretrainResult, PretrainStatus, PRETRAIN_CHECKPOINT, PretrainProgress, openPretrainCheckpoint, pretrainFingerprint, PretrainLogs, runPretraining, startFolder } from './pretrainFolder';
import { CHECKPOINT_FOLDER } from './resume';
import { resolveTrain } from './spec';

/** A step's event with DINO's own measurements. */
export interface DinoStepEvent extends StepEvent {
  readonly dino: DinoTrainedStep['dino'];
}

export type DinoPretrainEvent = DinoStepEvent | EvalEvent | CheckpointEvent | PretrainEndEvent;

/** The k of the k-NN monitor (DINO's usual choice) and its temperature. */
export const DINO_MONITOR_K = 20;
const MONITOR_TEMPERATURE = 0.07;
const METRIC_COLUMNS = ['run', 'step', 'epoch', 'loss', 'lr', 'weight_decay', 'teacher_temperature', 'teacher_momentum', 'teacher_entropy', 'teacher_batch_entropy', 'images_per_second'] as const;
const EVAL_COLUMNS = ['run', 'step', 'knn20', 'seconds'] as const;

function dinoMeasurements(trained: TrainedStep): DinoTrainedStep['dino'] {
  if (!('dino' in trained)) throw new Error(`step ${trained.step} came from another trainer than DINO's`);
  return (trained as DinoTrainedStep).dino;
}

/** The training settings of a DINO spec: AdamW, the file's learning-rate schedule. */
function dinoTrainSettings(loaded: LoadedPretrain): DinoTrainSettings {
  const { steps, batchSize, seed, lr, warmupSteps, schedule, betas } = resolveTrain(loaded.spec.train);
  return { steps, batchSize, seed, lr, warmupSteps, schedule, ...(betas ? { betas } : {}) };
}

interface DinoData {
  readonly models: DinoModels;
  readonly dino: DinoSettings;
  readonly train: DinoTrainSettings;
  readonly source: Awaited<ReturnType<Stages['dataset']['open']>>;
  readonly crops: MultiCrop;
  readonly baseTransform: ReturnType<typeof transformFor>;
  readonly evaluation?: EvaluationData;
  readonly output: string;
  readonly opened?: { readonly state: DinoStateFile; readonly progress: PretrainProgress };
}

async function prepareDino(stages: Pick<Stages, 'dataset'>, loaded: LoadedPretrain, options: PretrainOptions): Promise<DinoData> {
  const { spec, baseDir } = loaded;
  const dino = resolveDino(spec);
  const train = dinoTrainSettings(loaded);
  const size = spec.preprocess.size;
  const normalization = { mean: spec.preprocess.mean ?? HALF, std: spec.preprocess.std ?? HALF };
  const source = await stages.dataset.open(spec.data.train, { baseDir });
  const retention = spec.data.retention;
  const evaluation: EvaluationData | undefined = retention
    ? await (async () => {
        const bank = await stages.dataset.open(retention.bank, { baseDir });
        const query = await stages.dataset.open(retention.query, { baseDir });
        const transform = transformFor(spec.preprocess.test ?? 'native', size, normalization);
        return {
          test: { source: query, transform },
          retention: { bank, query, transform },
          knn: { k: [DINO_MONITOR_K], temperature: MONITOR_TEMPERATURE },
          batchSize: spec.evaluate?.batchSize ?? Math.max(train.batchSize, 64),
        };
      })()
    : undefined;
  // The views are cut from the base transform's pixels: mean 0 and std 1 keep them exact (k/255).
  const baseTransform = transformFor(spec.preprocess.train ?? 'native', size, { mean: [0, 0, 0], std: [1, 1, 1] });
  const crops = new MultiCrop(dino, size, normalization, train.seed);
  const { architecture } = spec;
  const models = DinoModels.init(
    { imageSize: size, patchSize: architecture.patchSize, inChannels: 3, width: architecture.width, depth: architecture.depth, heads: architecture.heads, mlpHidden: architecture.mlpHidden, layerNormEps: architecture.layerNormEps ?? 1e-6 },
    dino,
    train.seed,
  );
  try {
    const opened = options.resume ? openPretrainCheckpoint(options.outDir, loaded.spec, (file) => DinoStateFile.open(file)) : undefined;
    return { models, dino, train, source, crops, baseTransform, evaluation, output: path.resolve(baseDir, spec.output), opened };
  } catch (error) {
    models.dispose();
    throw error;
  }
}

/** The DINO pretraining as a LoopJob. */
function dinoPretrainJob(stages: Pick<Stages, 'dataset' | 'evaluator'>, loaded: LoadedPretrain, data: DinoData, options: PretrainOptions, result: { knn: number }): LoopJob<DinoPretrainEvent, DinoSession> {
  const { spec } = loaded;
  const { train, models, opened } = data;
  const started = Date.now();
  const fromStep = opened?.state.header.step ?? 0;
  const seconds = () => (opened?.progress.seconds ?? 0) + (Date.now() - started) / 1000;
  if (opened?.progress.measure !== undefined) result.knn = opened.progress.measure;
  const every = data.evaluation ? (spec.evaluate?.every ?? 0) : 0;
  const end = (status: PretrainStatus, step: number, note?: string): PretrainEndEvent => ({ kind: 'pretrain-end', status, step, note });
  const evaluation = data.evaluation;
  // The k-NN of the teacher's class tokens on the retention bank and query (labels only measure).
  const monitor = (step: number): Observable<DinoPretrainEvent> =>
    evaluation
      ? from(stages.evaluator.evaluate(models.teacher, evaluation, { newTask: false, retention: true, unplugged: false })).pipe(
          map((evaluated): EvalEvent => {
            result.knn = evaluated.retention?.[DINO_MONITOR_K] ?? NaN;
            return { kind: 'eval', method: spec.name, seed: train.seed, step, ...evaluated };
          }),
        )
      : of();
  return {
    steps: train.steps,
    // The random initialisation's k-NN first (step 0), the floor the monitor should rise from.
    opening: fromStep === 0 && every > 0 ? defer(() => monitor(0)) : of<DinoPretrainEvent>(),
    train: (hooks) => {
      const batches = stages.dataset.batches(data.source, { batchSize: train.batchSize, seed: train.seed, epochs: Infinity, dropLast: true, transform: data.baseTransform, startStep: fromStep });
      return trainDino({ models, dino: data.dino, train }, data.crops, batches, hooks);
    },
    stepEvent: (trained) => ({
      kind: 'step',
      method: spec.name,
      seed: train.seed,
      step: trained.step,
      steps: train.steps,
      epoch: trained.epoch,
      loss: trained.loss,
      lr: trained.lr,
      imagesPerSecond: trained.imagesPerSecond,
      dino: dinoMeasurements(trained),
    }),
    followUps: evaluation ? [{ due: evaluationSchedule(every, train.steps), run: (trained) => monitor(trained.step) }] : [],
    checkpoint: dinoCheckpoint<DinoPretrainEvent>({
      file: path.join(options.outDir, CHECKPOINT_FOLDER, PRETRAIN_CHECKPOINT),
      every: spec.train.checkpointEvery ?? (every > 0 ? every : Math.max(1, Math.ceil(train.steps / 10))),
      opened: opened?.state,
      progress: (): PretrainProgress => ({ fingerprint: pretrainFingerprint(spec), measure: Number.isNaN(result.knn) ? undefined : result.knn, seconds: seconds() }),
      event: (step, file) => ({ kind: 'checkpoint', method: spec.name, seed: train.seed, step, file }),
    }),
    stop: options.stop,
    finish: (): Observable<DinoPretrainEvent> =>
      defer(async () => {
        const provenance = {
          name: spec.name,
          objective: 'dino',
          model: 'teacher',
          train: spec.data.train,
          labels_used_for_training: false,
          steps: train.steps,
          seed: train.seed,
          recipe: { train: spec.train, dino: data.dino, preprocess: spec.preprocess },
          ...(Number.isNaN(result.knn) ? {} : { knn20: Number(result.knn.toFixed(4)), knn_bank: spec.data.retention?.bank, knn_query: spec.data.retention?.query }),
        };
        await saveVit(models.teacher, data.output, { 'vitpeft.pretrain': JSON.stringify(provenance) });
        return end('ok', train.steps);
      }),
    interrupted: (step) => end('interrupted', step, `interrupted after step ${step} of ${train.steps}; continue with: vitpeft pretrain --resume ${options.outDir}`),
    diverged: (error) => end('diverged', error.step, error.message),
    dispose: () => undefined,
  };
}

export async function pretrainDino(stages: Pick<Stages, 'dataset' | 'evaluator'>, loaded: LoadedPretrain, options: PretrainOptions): Promise<PretrainResult> {
  const { spec } = loaded;
  const started = Date.now();
  startFolder(loaded, options);
  const data = await prepareDino(stages, loaded, options);
  const result = { knn: NaN };
  const steps = data.train.steps;
  const logEvery = Math.max(1, Math.floor(steps / 20));
  try {
    const { crops, outDim } = data.dino;
    options.log(
      `DINO pretraining '${spec.name}': ${data.models.teacher.parameterCount().toLocaleString('en-US')} backbone parameters, K = ${outDim}, on ${data.source.description} (labels unused), ` +
        `2 global views at ${spec.preprocess.size} px + ${crops.localCrops} local at ${crops.localSize} px, ${steps} steps${data.dino.scheduleSteps !== undefined && data.dino.scheduleSteps > steps ? ` (the first of a ${data.dino.scheduleSteps}-step schedule)` : ''}`,
    );
    let entropy = NaN;
    const record = (event: DinoPretrainEvent, logs: PretrainLogs<(typeof METRIC_COLUMNS)[number], (typeof EVAL_COLUMNS)[number]>) => {
      if (event.kind === 'step') {
        const { dino } = event;
        entropy = dino.teacherEntropy;
        logs.metrics.append({
          run: spec.name,
          step: event.step,
          epoch: event.epoch,
          loss: event.loss,
          lr: event.lr,
          weight_decay: dino.weightDecay,
          teacher_temperature: dino.teacherTemperature,
          teacher_momentum: dino.teacherMomentum,
          teacher_entropy: dino.teacherEntropy,
          teacher_batch_entropy: dino.teacherBatchEntropy,
          images_per_second: event.imagesPerSecond,
        });
        if (event.step % logEvery === 0) {
          options.log(`  step ${event.step}/${steps} loss ${event.loss.toFixed(4)} lr ${event.lr.toPrecision(3)} teacher entropy ${dino.teacherEntropy.toFixed(3)}, of the batch mean ${dino.teacherBatchEntropy.toFixed(3)} (log K ${Math.log(outDim).toFixed(3)}) ${event.imagesPerSecond.toFixed(1)} img/s`);
        }
      } else if (event.kind === 'eval') {
        const knn = event.retention?.[DINO_MONITOR_K] ?? NaN;
        logs.evals.append({ run: spec.name, step: event.step, knn20: knn, seconds: event.seconds });
        // No step has measured the teacher's entropy before the first evaluation.
        options.log(`  k-NN@${DINO_MONITOR_K} of the teacher ${knn.toFixed(2)}% at step ${event.step}${Number.isNaN(entropy) ? '' : ` (teacher entropy ${entropy.toFixed(3)})`}`);
      }
    };
    const columns = { metrics: METRIC_COLUMNS, evals: EVAL_COLUMNS };
    const end = await runPretraining(options.outDir, columns, data.opened?.state, record, () => runJobLoop<DinoPretrainEvent, DinoSession>(() => dinoPretrainJob(stages, loaded, data, options, result)));
    return {
      status: end?.status ?? 'ok',
      output: data.output,
      testAccuracy: NaN,
      ...(Number.isNaN(result.knn) ? {} : { knnAccuracy: result.knn }),
      parameters: data.models.teacher.parameterCount(),
      steps: end?.step ?? steps,
      seconds: (Date.now() - started) / 1000,
      note: end?.note,
    };
  } finally {
    data.models.dispose();
  }
}
