// The one place that decides what trains. A method names the parts of the model that train
// (the whole model, blocks, adapters, the head): every variable of those parts is made trainable
// and every other variable of the model frozen, by structure rather than by matching names.

import * as tf from '@tensorflow/tfjs-core';
import { Module } from '../../models/vit/module';
import { VisionTransformer } from '../../models/vit/visionTransformer';

export interface Trainability {
  /** In the model's parameter order. */
  readonly trainable: tf.Variable[];
  readonly trainableNames: string[];
  readonly trainableCount: number;
  /** Index of the first block holding a trainable variable; 0 if the embeddings train; depth if only the head trains. */
  readonly firstTrainableBlock: number;
}

export function assignTrainability(model: VisionTransformer, trainableParts: readonly Module[]): Trainability {
  const chosen = new Set<tf.Variable>(trainableParts.flatMap((part) => part.namedParameters().map(([, variable]) => variable)));
  const trainable: tf.Variable[] = [];
  const trainableNames: string[] = [];
  for (const [name, variable] of model.namedParameters()) {
    variable.trainable = chosen.has(variable);
    if (variable.trainable) {
      trainable.push(variable);
      trainableNames.push(name);
      chosen.delete(variable);
    }
  }
  if (chosen.size > 0) throw new Error(`surgery: ${chosen.size} variable(s) marked trainable do not belong to the model`);
  return { trainable, trainableNames, trainableCount: countParameters(trainable), firstTrainableBlock: firstTrainableBlock(model) };
}

export function countParameters(variables: readonly tf.Tensor[]): number {
  return variables.reduce((sum, variable) => sum + variable.size, 0);
}

function anyTrainable(module: Module): boolean {
  return module.namedParameters().some(([, variable]) => variable.trainable);
}

/** Where the trainable part of the network starts, read from the variables' flags. */
export function firstTrainableBlock(model: VisionTransformer): number {
  if (model.clsToken.trainable || model.posEmbed.trainable || anyTrainable(model.patchEmbed)) return 0;
  const index = model.blocks.findIndex(anyTrainable);
  return index === -1 ? model.blocks.length : index;
}
