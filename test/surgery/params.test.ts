import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildProgram } from '../../cli/main';
import { UsageError } from '../../cli/errors';
import { saveVit } from '../../models/checkpoint/vitCheckpoint';
import { presetConfig } from '../../models/vit/config';
import { PAPER_CONFIGURATIONS, agreesWithReported, applySurgery, countConfigurations, parseReported, zeroModel } from '../../stages/surgery';
import { tinyConfig, tinyModel } from './fixtures';

// ../shared/PROTOCOL.md, "Parameter arithmetic (exact, ViT-B/16, 100 classes)".
const BLOCK = 7_087_872;
const HEAD = 76_900;
const EXPECTED: Record<string, number> = {
  full: 85_875_556,
  top3: 3 * BLOCK + HEAD,
  linear: HEAD,
  'lora-r4': 224_356,
  'lora-r8': 371_812,
  'lora-r16': 666_724,
  'block-p1': BLOCK + HEAD,
  'block-p2': 2 * BLOCK + HEAD,
  'block-p3': 3 * BLOCK + HEAD,
  'block-p4': 28_428_388,
};

/** Runs the command line in this process; returns what it printed on stdout. */
async function runCli(args: string[]): Promise<string> {
  let out = '';
  const write = process.stdout.write;
  const writeError = process.stderr.write;
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await buildProgram().parseAsync(['node', 'vitpeft', ...args]);
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeError;
  }
  return out;
}

describe('surgery: parameter counts', () => {
  it("equal the exact arithmetic for ViT-B/16 with 100 classes, for the paper's ten configurations", () => {
    expect(3 * BLOCK + HEAD).to.equal(21_340_516);
    const base = zeroModel(presetConfig('vit-b16'));
    try {
      expect(base.parameterCount()).to.equal(85_798_656);
      const rows = countConfigurations(base, 100);
      expect(rows.map((row) => row.name)).to.deep.equal(Object.keys(EXPECTED));
      for (const row of rows) expect(row.trainable, row.name).to.equal(EXPECTED[row.name]);
      const byName = Object.fromEntries(rows.map((row) => [row.name, row]));
      expect(rows.map((row) => row.firstTrainableBlock)).to.deep.equal([0, 9, 12, 0, 0, 0, 12, 6, 4, 3]);
      for (const name of ['full', 'top3', 'linear', 'block-p1', 'block-p2', 'block-p3', 'block-p4']) expect(byName[name].agrees, name).to.equal(true);
      for (const [name, total] of [['lora-r4', 301_256], ['lora-r8', 448_712], ['lora-r16', 743_624]] as const) {
        expect(byName[name].agrees, name).to.equal(false);
        expect(byName[name].headCountedTwice).to.deep.equal({ head: HEAD, total, agrees: true });
      }
    } finally {
      base.dispose();
    }
  });

  it('are the same on a zero-weight model as on a model with real weights', () => {
    const real = tinyModel(12);
    const zero = zeroModel(tinyConfig(12));
    try {
      const counts = (rows: ReturnType<typeof countConfigurations>) => rows.map((row) => row.trainable);
      expect(counts(countConfigurations(zero, 10))).to.deep.equal(counts(countConfigurations(real, 10)));
      expect(countConfigurations(real, 10)[0].reported, 'the paper figures only apply to its setting').to.equal(null);
    } finally {
      real.dispose();
      zero.dispose();
    }
  });

  it("reads the paper's figures and checks agreement at its precision (rounded or truncated)", () => {
    expect(parseReported('85.9 M')).to.deep.equal({ value: 85_900_000, resolution: 100_000 });
    expect(parseReported('301 K')).to.deep.equal({ value: 301_000, resolution: 1_000 });
    expect(parseReported('76.9 K')).to.deep.equal({ value: 76_900, resolution: 100 });
    expect(agreesWithReported(7_164_772, '7.2 M')).to.equal(true);
    expect(agreesWithReported(448_712, '448 K')).to.equal(true);
    expect(agreesWithReported(224_356, '301 K')).to.equal(false);
    expect(PAPER_CONFIGURATIONS).to.have.length(10);
  });

  it('vitpeft params --arch vit-b16 --classes 100 --json prints the ten names with integer counts', async () => {
    const rows = JSON.parse(await runCli(['params', '--arch', 'vit-b16', '--classes', '100', '--json'])) as Array<{ name: string; trainable: number }>;
    expect(rows.map((row) => row.name)).to.deep.equal(Object.keys(EXPECTED));
    for (const row of rows) {
      expect(Number.isInteger(row.trainable)).to.equal(true);
      expect(row.trainable, row.name).to.equal(EXPECTED[row.name]);
    }
  });

  it('vitpeft params prints a table beside the paper and explains its LoRA figures by arithmetic', async () => {
    const text = await runCli(['params', '--arch', 'vit-b16', '--classes', '100']);
    expect(text).to.match(/full\s+85,875,556\s+85\.9 M\s+agrees/);
    expect(text).to.match(/lora-r4\s+224,356\s+301 K\s+the paper counted the head twice/);
    expect(text).to.contain('224,356 + 76,900 (head) = 301,256 ≈ 301 K');
    expect(text).to.contain('666,724 + 76,900 (head) = 743,624 ≈ 743 K');
    expect(text).to.match(/block-p4\s+28,428,388\s+28\.4 M\s+agrees/);
  });

  it('vitpeft params --checkpoint counts on the checkpoint, marking configurations that do not fit it', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-params-'));
    const deep = tinyModel(12);
    const shallow = tinyModel(4);
    try {
      await saveVit(deep, path.join(folder, 'deep.safetensors'));
      await saveVit(shallow, path.join(folder, 'shallow.safetensors'));
      const rows = JSON.parse(await runCli(['params', '--checkpoint', path.join(folder, 'deep.safetensors'), '--classes', '10', '--json'])) as Array<{ name: string; trainable: number; reported: null }>;
      const direct = applySurgery(deep, { method: 'block', p: 4 }, { classes: 10 });
      expect(rows.find((row) => row.name === 'block-p4')!.trainable).to.equal(direct.trainableCount);
      direct.model.dispose();
      expect(rows.every((row) => row.reported === null)).to.equal(true);
      const shallowRows = JSON.parse(await runCli(['params', '--checkpoint', path.join(folder, 'shallow.safetensors'), '--classes', '10', '--json'])) as Array<{ name: string; trainable: number | null; error?: string }>;
      const p3 = shallowRows.find((row) => row.name === 'block-p3')!;
      expect(p3.trainable).to.equal(null);
      expect(p3.error).to.match(/p must divide the depth 4/);
      expect(shallowRows.find((row) => row.name === 'block-p4')!.trainable).to.be.a('number');
    } finally {
      deep.dispose();
      shallow.dispose();
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it('vitpeft params needs exactly one of --arch and --checkpoint', async () => {
    for (const args of [['params'], ['params', '--arch', 'vit-b16', '--checkpoint', 'x.safetensors'], ['params', '--arch', 'vit-h14']]) {
      const tensors = tf.memory().numTensors;
      await runCli(args).then(
        () => expect.fail(`${args.join(' ')} should be refused`),
        (error: Error) => expect(error).to.be.instanceOf(UsageError),
      );
      expect(tf.memory().numTensors).to.equal(tensors);
    }
  });
});
