// The models shipped under models/pretrained/ are the ones their committed pretraining files make:
// the self-supervised model says, in its metadata, the DINO objective, that no labels were used,
// and the very recipe, data and step count of pipelines/pretrain-dino-digits.json; the default
// pipeline fine-tunes the supervised model, pipelines/split-mnist-dino.json the DINO one.

import { expect } from 'chai';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { SafetensorsFile } from '../../models/checkpoint/safetensors';
import { DEFAULT_MODEL, DEFAULT_PIPELINE, DINO_MODEL, DINO_PIPELINE, PRETRAIN_DIGITS, PRETRAIN_DINO_DIGITS } from '../../pipelines/builtin';
import { resolveDino } from '../../pipelines/dinoRecipe';
import { loadPretrainFile } from '../../pipelines/pretrainSpec';
import { loadPipelineFile } from '../../pipelines/spec';
import { resolveDataPath } from '../../stages/dataset/dataUri';

function provenance(file: string): Record<string, unknown> & { recipe?: { dino?: unknown }; hasHead: boolean } {
  const contents = SafetensorsFile.open(file);
  try {
    return { ...JSON.parse(contents.metadata['vitpeft.pretrain']), hasHead: contents.names.some((name) => name.startsWith('head')) };
  } finally {
    contents.close();
  }
}

describe('the shipped pretrained models', () => {
  it('the DINO model is the teacher of pipelines/pretrain-dino-digits.json: DINO, no labels, its recipe, data and steps', () => {
    const { spec } = loadPretrainFile(PRETRAIN_DINO_DIGITS);
    const made = provenance(DINO_MODEL);
    expect(made).to.include({ hasHead: false, objective: 'dino', model: 'teacher', labels_used_for_training: false, name: spec.name, train: spec.data.train, steps: spec.train.steps, seed: spec.train.seed });
    expect(made.recipe?.dino).to.deep.equal(JSON.parse(JSON.stringify(resolveDino(spec))));
    expect(made.knn20).to.be.a('number').and.above(90);
    const { model, summary } = loadVit(DINO_MODEL, { imageSize: 28 });
    expect(summary.config).to.include({ width: spec.architecture.width, depth: spec.architecture.depth, heads: spec.architecture.heads, patchSize: spec.architecture.patchSize, numClasses: 0 });
    model.dispose();
  });

  it('the default model is pipelines/pretrain-digits.json\'s; each Split-MNIST pipeline fine-tunes its own', () => {
    const { spec } = loadPretrainFile(PRETRAIN_DIGITS);
    expect(provenance(DEFAULT_MODEL)).to.include({ hasHead: true, name: spec.name, train: spec.data.train, steps: spec.train.steps });
    for (const [pipeline, model] of [[DEFAULT_PIPELINE, DEFAULT_MODEL], [DINO_PIPELINE, DINO_MODEL]]) {
      const loaded = loadPipelineFile(pipeline);
      expect(resolveDataPath(loaded.spec.model.checkpoint, loaded.baseDir), pipeline).to.equal(model);
    }
  });
});
