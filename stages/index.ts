// vitpeft/stages: what a user needs to write, wrap or test a stage — the five stage interfaces,
// their default implementations, the types they receive and return, and the DI tokens they are
// registered under. reflect-metadata comes first: the defaults are tsyringe-injectable classes.
import 'reflect-metadata';
import '../di/tfjsRegistrations';
export { TOKENS } from '../di/tokens';
export * from '../common/events';
export { DatasetStage, DefaultDatasetStage } from './dataset/stage';
export { Batch, BatchOptions, batches } from './dataset/batches';
export { DatasetSource, Sample } from './dataset/source';
export { MemorySource, MemorySourceInit } from './dataset/memorySource';
export { Transform, TransformSpec, NAMED_TRANSFORMS, resolveTransform } from './dataset/transforms';
export { SurgeryStage, DefaultSurgeryStage } from './surgery/stage';
export { SurgeryOptions, SurgeryResult } from './surgery/applySurgery';
export { MethodSpec } from './surgery/methodSpec';
export { TrainerStage, DefaultTrainerStage, TrainHooks, TrainedStep } from './trainer/stage';
export { DivergedError, StepMetrics, TrainJob, TrainSettings, TrainingSession } from './trainer/session';
export { DualEvaluator, EvaluationData, EvaluationRequest, EvaluationResult, EvaluationSet, EvaluatorStage } from './evaluator/stage';
export { knnAccuracy } from './evaluator/knn';
export { DefaultReporter, ReporterOptions, ReporterStage } from './reporter/stage';
