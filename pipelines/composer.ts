// Composing a pipeline in code: pipeline({ evaluator: myEvaluator }) resolves every stage through
// its DI token in a child container, with the given ones replacing the defaults, and runs the
// event stream through the reporter.

import 'reflect-metadata';
import { Observable } from 'rxjs';
import { DependencyContainer, container as rootContainer } from 'tsyringe';
import { TOKENS } from '../di/tokens';
import { DefaultDatasetStage, DatasetStage } from '../stages/dataset/stage';
import { DualEvaluator, EvaluatorStage } from '../stages/evaluator/stage';
import { DefaultReporter, ReporterOptions, ReporterStage } from '../stages/reporter/stage';
import { DefaultSurgeryStage, SurgeryStage } from '../stages/surgery/stage';
import { DefaultTrainerStage, TrainerStage } from '../stages/trainer/stage';
import { PipelineEvent } from '../common/events';
import type { RunOptions } from './job';
import type { Stages } from './job';
import { runPipeline } from './runner';
import { LoadedPipeline } from './spec';

export interface StageOverrides {
  readonly dataset?: DatasetStage;
  readonly surgery?: SurgeryStage;
  readonly trainer?: TrainerStage;
  readonly evaluator?: EvaluatorStage;
  readonly reporter?: ReporterStage;
}

/** A child container with the default stages, any override registered over its default. */
export function createPipelineContainer(overrides: StageOverrides = {}, parent: DependencyContainer = rootContainer): DependencyContainer {
  const child = parent.createChildContainer();
  const defaults = [
    [TOKENS.dataset, DefaultDatasetStage, overrides.dataset],
    [TOKENS.surgery, DefaultSurgeryStage, overrides.surgery],
    [TOKENS.trainer, DefaultTrainerStage, overrides.trainer],
    [TOKENS.evaluator, DualEvaluator, overrides.evaluator],
    [TOKENS.reporter, DefaultReporter, overrides.reporter],
  ] as const;
  for (const [token, implementation, override] of defaults) {
    if (override) child.register(token, { useValue: override });
    else if (!child.isRegistered(token, true)) child.register(token, { useClass: implementation as new (...args: never[]) => unknown });
  }
  return child;
}

export interface Pipeline {
  readonly container: DependencyContainer;
  readonly stages: Stages;
  /** The run's events, already passed through the reporter (CSV, progress, table, plots). */
  run(loaded: LoadedPipeline, options: RunOptions): Observable<PipelineEvent>;
}

export function pipeline(overrides: StageOverrides = {}, parent: DependencyContainer = rootContainer): Pipeline {
  const container = createPipelineContainer(overrides, parent);
  return {
    container,
    // Each stage is resolved when first used: a job that needs no reporter needs no reporter options.
    get stages(): Stages {
      return {
        get dataset() {
          return container.resolve<DatasetStage>(TOKENS.dataset);
        },
        get surgery() {
          return container.resolve<SurgeryStage>(TOKENS.surgery);
        },
        get trainer() {
          return container.resolve<TrainerStage>(TOKENS.trainer);
        },
        get evaluator() {
          return container.resolve<EvaluatorStage>(TOKENS.evaluator);
        },
        get reporter() {
          return container.resolve<ReporterStage>(TOKENS.reporter);
        },
      };
    },
    run(loaded: LoadedPipeline, options: RunOptions): Observable<PipelineEvent> {
      if (!container.isRegistered(TOKENS.reporterOptions, true)) {
        container.register<ReporterOptions>(TOKENS.reporterOptions, { useValue: { outDir: options.outDir } });
      }
      const stages = this.stages;
      return runPipeline(stages, loaded, options).pipe(stages.reporter.record());
    },
  };
}
