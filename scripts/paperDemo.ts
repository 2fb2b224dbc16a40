// Sets up the paper configuration's demonstration (not committed output): a random ViT-B/16
// checkpoint (timm's shape, no head), synthetic CIFAR-100 binary files (256 train, 20 test
// images) and a pipeline with pipelines/paper.json's settings but 2 steps and a small k-NN bank
// (100 train images as the bank, the 20 test images as queries). Then:
//
//   node dist/scripts/paperDemo.js /tmp/paper-demo
//   /usr/bin/time -v node bin/vitpeft.js run /tmp/paper-demo/paper-demo.json --only full --out /tmp/paper-demo/out

import 'reflect-metadata';
import * as fs from 'fs';
import * as path from 'path';
import { presetConfig } from '../models/vit/config';
import { VisionTransformer } from '../models/vit/visionTransformer';
import { saveVit } from '../models/checkpoint/vitCheckpoint';
import { initBackend } from '../di/backend';

/** CIFAR-100 binary records (coarse label, fine label, planar RGB) with seeded pixels. */
function cifar100Records(count: number, seed: number): Buffer {
  const out = Buffer.alloc(count * 3074);
  let state = seed;
  for (let r = 0; r < count; r++) {
    out[r * 3074] = r % 20;
    out[r * 3074 + 1] = r % 100;
    for (let i = 0; i < 3072; i++) {
      state = (state * 1103515245 + 12345) >>> 0;
      out[r * 3074 + 2 + i] = state >>> 24;
    }
  }
  return out;
}

async function main(): Promise<void> {
  const folder = path.resolve(process.argv[2] ?? '/tmp/paper-demo');
  const data = path.join(folder, 'cifar-100-binary');
  fs.mkdirSync(data, { recursive: true });
  fs.writeFileSync(path.join(data, 'train.bin'), cifar100Records(256, 1));
  fs.writeFileSync(path.join(data, 'test.bin'), cifar100Records(20, 2));
  await initBackend('auto');
  const model = VisionTransformer.init(presetConfig('vit-b16', { numClasses: 0 }), { seed: 1 });
  await saveVit(model, path.join(folder, 'vit-b16-random.safetensors'));
  model.dispose();
  const paper = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'pipelines', 'paper.json'), 'utf8'));
  const spec = {
    ...paper,
    name: 'paper-demo',
    description: `${paper.name}'s settings on a random ViT-B/16 and synthetic CIFAR-100, 2 steps, a 100-image bank`,
    model: { checkpoint: 'vit-b16-random.safetensors' },
    data: { train: `cifar100:${data}:train`, test: `cifar100:${data}:test`, retention: { bank: `cifar100:${data}:train?perClass=1`, query: `cifar100:${data}:test` } },
    train: { ...paper.train, steps: 2 },
  };
  fs.writeFileSync(path.join(folder, 'paper-demo.json'), `${JSON.stringify(spec, null, 2)}\n`);
  process.stdout.write(`${path.join(folder, 'paper-demo.json')}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`paperDemo: ${error.message}\n`);
  process.exitCode = 1;
});
