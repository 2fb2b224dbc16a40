// The models shipped under models/pretrained/ are the ones their committed pretraining files make:
// the self-supervised model says, in its metadata, the DINO objective, that no labels were used,
// and the very recipe, data and step count of pipelines/pretrain-dino-digits.json; the default
// pipeline fine-tunes the DINO model, pipelines/split-mnist-supervised.json the supervised one.

import { expect } from 'chai';
import { loadVit } from '../../models/checkpoint/vitCheckpoint';
import { SafetensorsFile } from '../../models/checkpoint/safetensors';
import { DEFAULT_MODEL, DEFAULT_PIPELINE, PRETRAIN_DIGITS, PRETRAIN_DINO_DIGITS, SUPERVISED_MODEL, SUPERVISED_PIPELINE } from '../../pipelines/builtin';
import { resolveDino } from '../../pipelines/dinoRecipe';
import { loadPretrainFile } from '../../pipelines/pretrainSpec';
import { loadPipelineFile } from '../../pipelines/spec';
import { measureBar } from '../../scripts/knnBar';
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
  it("the default's model is the teacher of pipelines/pretrain-dino-digits.json: DINO, no labels, its recipe, data and steps", () => {
    const { spec } = loadPretrainFile(PRETRAIN_DINO_DIGITS);
    const made = provenance(DEFAULT_MODEL);
    expect(made).to.include({ hasHead: false, objective: 'dino', model: 'teacher', labels_used_for_training: false, name: spec.name, train: spec.data.train, steps: spec.train.steps, seed: spec.train.seed });
    expect(made.recipe?.dino).to.deep.equal(JSON.parse(JSON.stringify(resolveDino(spec))));
    expect(made.knn20).to.be.a('number').and.above(90);
    const { model, summary } = loadVit(DEFAULT_MODEL, { imageSize: 28 });
    expect(summary.config).to.include({ width: spec.architecture.width, depth: spec.architecture.depth, heads: spec.architecture.heads, patchSize: spec.architecture.patchSize, numClasses: 0 });
    model.dispose();
  });

  it("the default's model passes the bar on the default's retention split: weighted k-NN@20 of at least 95%, above raw pixels with the same bank", async () => {
    // Issue 14's bar for a self-supervised default, on the default pipeline's own bank (400 train
    // images per digit 0-4) and queries (the 0-4 test split). Measured: 96.89% against 96.70% for
    // raw pixels as stored and 94.27% as the ViT sees them.
    const { spec } = loadPipelineFile(DEFAULT_PIPELINE);
    const retention = spec.data.retention;
    if (retention === undefined) throw new Error('the default pipeline has no retention split');
    const scores = await measureBar(DEFAULT_MODEL, retention.bank, retention.query, { size: spec.preprocess.size, mean: spec.preprocess.mean?.[0] ?? 0.5, std: spec.preprocess.std?.[0] ?? 0.5, k: 20 });
    expect(scores.querySize).to.equal(1029);
    expect(scores.model).to.be.at.least(95);
    expect(scores.model, `raw pixels ${scores.rawStored}%`).to.be.above(scores.rawStored);
    expect(scores.model).to.be.above(scores.rawAsSeen);
  });

  it('the supervised model is pipelines/pretrain-digits.json\'s; each Split-MNIST pipeline fine-tunes its own', () => {
    const { spec } = loadPretrainFile(PRETRAIN_DIGITS);
    expect(provenance(SUPERVISED_MODEL)).to.include({ hasHead: true, name: spec.name, train: spec.data.train, steps: spec.train.steps });
    for (const [pipeline, model] of [[DEFAULT_PIPELINE, DEFAULT_MODEL], [SUPERVISED_PIPELINE, SUPERVISED_MODEL]]) {
      const loaded = loadPipelineFile(pipeline);
      expect(resolveDataPath(loaded.spec.model.checkpoint, loaded.baseDir), pipeline).to.equal(model);
    }
  });
});
