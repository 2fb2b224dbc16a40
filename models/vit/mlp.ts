// The transformer MLP: fc1, exact GELU, fc2.

import * as tf from '@tensorflow/tfjs-core';
import { gelu } from '../ops/gelu';
import { Linear, Projection } from './linear';
import { ForwardContext, InitScheme, Module, NamedParameter, SeedSource, UNSEEDED, prefixed } from './module';

export class Mlp implements Module {
  constructor(
    public fc1: Projection,
    public fc2: Projection,
  ) {
    if (fc1.outFeatures !== fc2.inFeatures) throw new Error(`Mlp: fc1 gives ${fc1.outFeatures} features but fc2 takes ${fc2.inFeatures}`);
  }

  static init(width: number, hidden: number, seeds: SeedSource = UNSEEDED, scheme: InitScheme = 'vitpeft'): Mlp {
    return new Mlp(Linear.init(width, hidden, { seed: seeds(), scheme }), Linear.init(hidden, width, { seed: seeds(), scheme }));
  }

  forward(x: tf.Tensor2D, context: ForwardContext): tf.Tensor2D {
    return tf.tidy(() => this.fc2.forward(gelu(this.fc1.forward(x, context)), context));
  }

  namedParameters(): NamedParameter[] {
    return [...prefixed('fc1', this.fc1.namedParameters()), ...prefixed('fc2', this.fc2.namedParameters())];
  }

  clone(): Mlp {
    return new Mlp(this.fc1.clone(), this.fc2.clone());
  }

  dispose(): void {
    this.fc1.dispose();
    this.fc2.dispose();
  }
}
