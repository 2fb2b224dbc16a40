import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PipelineSpecError, decodePipeline, loadPipelineFile, methodName, resolveTrain } from '../../pipelines/spec';

export function tinySpec(): Record<string, unknown> {
  return {
    name: 'tiny',
    model: { checkpoint: 'path.safetensors' },
    data: { train: 'cifar100:DIR:train', test: 'cifar100:DIR:test', retention: { bank: 'SOURCE', query: 'SOURCE' } },
    preprocess: { size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    train: { steps: 50, batchSize: 16, optimizer: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 0, warmupSteps: 5, schedule: 'cosine', seed: 0 },
    evaluate: { every: 25, knn: { k: [10, 20], temperature: 0.07 } },
    methods: [{ method: 'full' }, { method: 'linear' }, { method: 'topk', k: 1 }, { method: 'lora', rank: 4 }, { method: 'block', p: 2 }],
  };
}

function problems(input: unknown): string[] {
  try {
    decodePipeline(input, 'bad.json');
  } catch (error) {
    expect(error).to.be.instanceOf(PipelineSpecError);
    return [...(error as PipelineSpecError).problems];
  }
  throw new Error('expected the pipeline to be rejected');
}

describe('pipeline spec (io-ts)', () => {
  it('accepts the documented shape and names methods as the paper does', () => {
    const spec = decodePipeline(tinySpec(), 'tiny.json');
    expect(spec.methods.map(methodName)).to.deep.equal(['full', 'linear', 'top1', 'lora-r4', 'block-p2']);
  });

  it('reports every error with its field path, unknown keys included', () => {
    const bad = JSON.parse(JSON.stringify(tinySpec())); // untyped on purpose: the test breaks it
    bad.train.lr = 'fast';
    bad.train.lrr = 0.1;
    delete bad.data.test;
    bad.methods[3].rank = 0;
    bad.methods.push({ method: 'lorra' });
    bad.preprocess.mean = [1, 2];
    expect(problems(bad)).to.have.members([
      'data.test: missing (expected a non-empty string)',
      'preprocess.mean: expected three numbers [r, g, b], got [1,2]',
      'train.lr: expected a positive number, got "fast"',
      'train.lrr: unknown key (allowed here: steps, batchSize, lr, optimizer, momentum, weightDecay, warmupSteps, schedule, seed, clipGradNorm, labelSmoothing, betas, checkpointEvery, microBatch), got 0.1',
      'methods[3].rank: expected a positive integer, got 0',
      "methods[5].method: expected one of 'full', 'linear', 'topk', 'lora', 'block', got \"lorra\"",
    ]);
  });

  it('rejects duplicate method names and p with split', () => {
    const spec = tinySpec();
    spec.methods = [{ method: 'full' }, { method: 'full' }, { method: 'block', p: 2, split: 3 }];
    expect(problems(spec)).to.deep.equal([
      "methods[1]: name 'full' is already used by methods[0]; give one a distinct \"name\"",
      'methods[2]: give either p or split, not both',
    ]);
  });

  it('lets a method override train settings, with defaults filled in', () => {
    const spec = tinySpec();
    spec.methods = [{ method: 'lora', rank: 8, train: { lr: 0.05 } }];
    const decoded = decodePipeline(spec, 'x.json');
    expect(resolveTrain(decoded.train, decoded.methods[0].train)).to.include({ lr: 0.05, steps: 50, momentum: 0.9, labelSmoothing: 0 });
  });

  it('expands a learning-rate sweep into one named method per rate', () => {
    const spec = tinySpec();
    spec.methods = [{ method: 'full' }, { method: 'lora', rank: 4, train: { lr: 1, warmupSteps: 3 } }];
    spec.sweep = { lr: [0.01, 0.1] };
    const decoded = decodePipeline(spec, 'sweep.json');
    expect(decoded.methods.map(methodName)).to.deep.equal(['full@lr0.01', 'full@lr0.1', 'lora-r4@lr0.01', 'lora-r4@lr0.1']);
    expect(resolveTrain(decoded.train, decoded.methods[3].train)).to.include({ lr: 0.1, warmupSteps: 3 });
  });

  it('loads JSON and YAML files, rejecting duplicate keys in either', () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-spec-'));
    const json = path.join(folder, 'p.json');
    fs.writeFileSync(json, JSON.stringify(tinySpec()));
    expect(loadPipelineFile(json).baseDir).to.equal(folder);
    const yaml = path.join(folder, 'p.yaml');
    fs.writeFileSync(yaml, 'name: tiny\nname: again\n');
    expect(() => loadPipelineFile(yaml)).to.throw(PipelineSpecError, /not valid YAML/);
    fs.writeFileSync(json, '{"name": "a", "name": "b"}');
    expect(() => loadPipelineFile(json)).to.throw(PipelineSpecError, /duplicate key "name"/);
    expect(() => loadPipelineFile(path.join(folder, 'missing.json'))).to.throw(PipelineSpecError, /missing\.json: 1 problem in the pipeline:\n {2}no such file/);
  });
});
