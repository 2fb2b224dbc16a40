// The four networks of a DINO pretraining: the student backbone and head, and the teacher's, of
// the same architecture. The teacher starts as a copy of the student and only ever moves by the
// EMA (DinoSession); nothing trains it by gradients.

import * as tf from '@tensorflow/tfjs-core';
import type { VitConfig } from '../../../models/vit/config';
import { NamedParameter, prefixed, seedSource } from '../../../models/vit/module';
import { DINO_RESAMPLE, TIMM_RESAMPLE } from '../../../models/vit/posEmbed';
import { VisionTransformer } from '../../../models/vit/visionTransformer';
import { DinoHead } from './head';
import type { DinoSettings } from './settings';

export class DinoModels {
  private constructor(
    readonly student: VisionTransformer,
    readonly studentHead: DinoHead,
    readonly teacher: VisionTransformer,
    readonly teacherHead: DinoHead,
  ) {}

  /**
   * A seeded backbone without a classification head, its DINO head, and the teacher's copies,
   * initialised as settings.init says and resampling position embeddings for the local views as
   * settings.positionResample says (both absent: DINO's).
   */
  static init(
    config: Omit<VitConfig, 'numClasses'>,
    settings: Pick<DinoSettings, 'outDim' | 'hiddenDim' | 'bottleneckDim' | 'normLastLayer' | 'batchNorm' | 'init' | 'positionResample'>,
    seed: number,
  ): DinoModels {
    const init = settings.init ?? 'dino';
    const posEmbedResample = (settings.positionResample ?? 'dino') === 'dino' ? DINO_RESAMPLE : TIMM_RESAMPLE;
    const student = VisionTransformer.init({ ...config, numClasses: 0 }, { seed, init, posEmbedResample });
    // The head's seeds follow the backbone's range (a ViT draws fewer than 1000 seeds).
    const head = DinoHead.init({ inDim: config.width, ...settings }, seedSource(seed + 1000), init);
    return new DinoModels(student, head, student.clone(), head.clone());
  }

  /** The student's parameters under their names (backbone, then `head.`), in a fixed order. */
  studentParameters(): NamedParameter[] {
    return [...this.student.namedParameters(), ...prefixed('head', this.studentHead.namedParameters())];
  }

  /** The teacher's, in the same order as studentParameters. */
  teacherParameters(): NamedParameter[] {
    return [...this.teacher.namedParameters(), ...prefixed('head', this.teacherHead.namedParameters())];
  }

  /**
   * The student's logits for the global views and then the local ones: the head runs once on
   * every view's class token, as DINO's MultiCropWrapper does (its batch normalisation, when
   * present, sees all the views together).
   */
  studentLogits(globals: tf.Tensor4D, locals: tf.Tensor4D | null): tf.Tensor2D {
    return tf.tidy(() => {
      const { logits, globalFeatures } = this.studentForward(globals, locals);
      globalFeatures.dispose();
      return logits;
    });
  }

  /** The student's logits (as studentLogits) and its backbone's class tokens of the global views [2B, D]. */
  studentForward(globals: tf.Tensor4D, locals: tf.Tensor4D | null): { logits: tf.Tensor2D; globalFeatures: tf.Tensor2D } {
    const globalFeatures = this.student.embedCls(globals);
    const logits = tf.tidy(() => this.studentHead.forward(locals ? tf.concat([globalFeatures, this.student.embedCls(locals)], 0) : globalFeatures));
    return { logits, globalFeatures };
  }

  /** The teacher's logits for images (no gradient). */
  teacherLogits(images: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => this.teacherHead.forward(this.teacher.embedCls(images)));
  }

  dispose(): void {
    this.student.dispose();
    this.studentHead.dispose();
    this.teacher.dispose();
    this.teacherHead.dispose();
  }
}
