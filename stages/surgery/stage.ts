// The surgery stage as the pipeline injects it.

import { injectable } from 'tsyringe';
import { VisionTransformer } from '../../models/vit/visionTransformer';
import { SurgeryOptions, SurgeryResult, applySurgery } from './applySurgery';
import { MethodSpec } from './methodSpec';

export interface SurgeryStage {
  /** A new model with the method applied and its trainable variables; the base stays untouched. */
  apply(base: VisionTransformer, spec: MethodSpec, options: SurgeryOptions): SurgeryResult;
}

@injectable()
export class DefaultSurgeryStage implements SurgeryStage {
  apply(base: VisionTransformer, spec: MethodSpec, options: SurgeryOptions): SurgeryResult {
    return applySurgery(base, spec, options);
  }
}
