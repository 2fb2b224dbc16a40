// The public API of vitpeft for use in code.
import 'reflect-metadata';
/** The TensorFlow.js core vitpeft computes with: tensors made with it share vitpeft's engine and backend. */
export * as tf from '@tensorflow/tfjs-core';
export * from './models/vit/config';
export * from './models/vit/visionTransformer';
export * from './models/checkpoint/safetensors';
export * from './models/checkpoint/vitCheckpoint';
export * from './di/backend';
export * from './stages/surgery';
export * from './stages/dataset';
export * from './stages/trainer/session';
export * from './stages/trainer/stage';
export * from './stages/evaluator/stage';
export * from './stages/evaluator/knn';
export * from './stages/reporter/stage';
export * from './common/events';
export * from './pipelines/spec';
export * from './pipelines/runner';
export { DEFAULT_KNN, resolveCheckpointPath, transformFor } from './pipelines/prepare';
export * from './pipelines/job';
export * from './common/stopSignal';
export * from './pipelines/composer';
export * from './pipelines/builtin';
export * from './di/tokens';
export * from './stages/index';
