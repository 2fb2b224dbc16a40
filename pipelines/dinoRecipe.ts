// A pretraining spec's DINO recipe with every setting resolved: the spec's `dino` block over
// DINO's defaults (stages/trainer/dino/settings.ts), the local size defaulting to DINO's 96/224
// of the model's size rounded to a patch multiple.

import { DINO_DEFAULTS, DinoSettings, defaultLocalSize } from '../stages/trainer/dino/settings';
import type { PretrainSpec } from './pretrainSpec';

function pair(value: readonly number[] | undefined, fallback: readonly [number, number]): [number, number] {
  return value ? [value[0], value[1]] : [fallback[0], fallback[1]];
}

export function resolveDino(spec: PretrainSpec): DinoSettings {
  const dino = spec.dino ?? {};
  const d = DINO_DEFAULTS;
  const blur = dino.augment?.blur ?? d.augment.blur;
  return {
    outDim: dino.outDim ?? d.outDim,
    hiddenDim: dino.hiddenDim ?? d.hiddenDim,
    bottleneckDim: dino.bottleneckDim ?? d.bottleneckDim,
    normLastLayer: dino.normLastLayer ?? d.normLastLayer,
    batchNorm: dino.batchNorm ?? d.batchNorm,
    freezeLastLayerSteps: dino.freezeLastLayerSteps ?? d.freezeLastLayerSteps,
    studentTemperature: dino.studentTemperature ?? d.studentTemperature,
    teacherTemperature: { ...d.teacherTemperature, ...dino.teacherTemperature },
    centerMomentum: dino.centerMomentum ?? d.centerMomentum,
    teacherMomentum: dino.teacherMomentum ?? d.teacherMomentum,
    weightDecay: { ...d.weightDecay, ...dino.weightDecay },
    clipGradNorm: dino.clipGradNorm ?? d.clipGradNorm,
    koleo: dino.koleo ?? d.koleo,
    ...(dino.scheduleSteps !== undefined ? { scheduleSteps: dino.scheduleSteps } : {}),
    crops: {
      globalScale: pair(dino.crops?.globalScale, d.crops.globalScale),
      localCrops: dino.crops?.localCrops ?? d.crops.localCrops,
      localSize: dino.crops?.localSize ?? defaultLocalSize(spec.preprocess.size, spec.architecture.patchSize),
      localScale: pair(dino.crops?.localScale, d.crops.localScale),
      // Given only when the spec names them, so older recipes resolve as they always did.
      ...(dino.crops?.interpolation !== undefined ? { interpolation: dino.crops.interpolation } : {}),
    },
    augment: {
      flip: dino.augment?.flip ?? d.augment.flip,
      jitter: dino.augment?.jitter ?? d.augment.jitter,
      brightness: dino.augment?.brightness ?? d.augment.brightness,
      contrast: dino.augment?.contrast ?? d.augment.contrast,
      blur: [blur[0], blur[1], blur[2]],
      blurSigma: pair(dino.augment?.blurSigma, d.augment.blurSigma),
      solarize: dino.augment?.solarize ?? d.augment.solarize,
      ...(dino.augment?.colorJitter !== undefined ? { colorJitter: dino.augment.colorJitter } : {}),
    },
    ...(dino.views !== undefined ? { views: dino.views } : {}),
    init: dino.init ?? 'dino',
    positionResample: dino.positionResample ?? 'dino',
  };
}
