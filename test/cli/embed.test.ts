import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile, serializeSafetensors, writeSafetensors } from '../../models/checkpoint/safetensors';
import { runCli } from '../helpers/cli';
import { maxAbsDifference } from '../helpers/tensors';
import { PARITY_DIR } from '../models/parity.test';

function readAll(file: string, names: string[]): Record<string, Float32Array> {
  const st = SafetensorsFile.open(file);
  try {
    return Object.fromEntries(names.map((name) => [name, st.readFloat32(name)]));
  } finally {
    st.close();
  }
}

describe('vitpeft embed and inspect (command line)', () => {
  let folder: string;
  let imagesFile: string;
  before(() => {
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-cli-'));
    const expected = SafetensorsFile.open(path.join(PARITY_DIR, 'expected.safetensors'));
    imagesFile = path.join(folder, 'images.safetensors');
    writeSafetensors(imagesFile, [
      ['images', { dtype: 'U8', shape: expected.info('images').shape, data: expected.readUint8('images') }],
      ['labels', { dtype: 'I32', shape: [4], data: expected.readInt32('labels') }],
    ]);
    expected.close();
  });

  for (const [checkpoint, prefix] of [['vit_timm.safetensors', 'timm'], ['vit_hf.safetensors', 'hf']] as const) {
    it(`embed on ${checkpoint} matches PyTorch's features and logits within 2e-4`, () => {
      const out = path.join(folder, `${prefix}.out.safetensors`);
      const result = runCli(['--backend', 'wasm', 'embed', '--checkpoint', path.join(PARITY_DIR, checkpoint), '--data', `safetensors:${imagesFile}`, '--out', out, '--batch', '3']);
      expect(result.status, result.stderr).to.equal(0);
      expect(result.stderr).to.match(/backend wasm/).and.match(/embedded 4 images/);
      const got = readAll(out, ['features', 'logits', 'labels']);
      const want = readAll(path.join(PARITY_DIR, 'expected.safetensors'), [`${prefix}.features`, `${prefix}.logits`, 'labels']);
      expect(maxAbsDifference(got.features, want[`${prefix}.features`])).to.be.below(2e-4);
      expect(maxAbsDifference(got.logits, want[`${prefix}.logits`])).to.be.below(2e-4);
      expect([...got.labels]).to.deep.equal([...want.labels]);
    });
  }

  it('inspect --json reports layout, architecture and parameter count', () => {
    const result = runCli(['inspect', path.join(PARITY_DIR, 'vit_hf_model.safetensors'), '--json']);
    expect(result.status, result.stderr).to.equal(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.layout).to.equal('huggingface');
    expect(summary.config).to.include({ width: 128, depth: 2, heads: 2, patchSize: 8, imageSize: 32, numClasses: 0 });
    // 2 blocks of 198,272 + embeddings (3*8*8*128 + 128 + 128 + 17*128) + final norm 256
    expect(summary.parameterCount).to.equal(2 * (384 * 128 + 384 + 128 * 128 + 128 + 512 * 128 + 512 + 128 * 512 + 128 + 4 * 128) + 3 * 64 * 128 + 128 + 128 + 17 * 128 + 256);
  });

  describe('bad input: one line naming the file and the key, non-zero exit, no stack trace', () => {
    const checkpoint = () => fs.readFileSync(path.join(PARITY_DIR, 'vit_timm.safetensors'));
    const cases: Array<{ what: string; make: () => Buffer; message: RegExp; asImages?: boolean }> = [
      { what: 'a truncated checkpoint', make: () => checkpoint().subarray(0, 5000), message: /header length \d+ runs past the end of the file|run past the end of the data section/ },
      {
        what: 'offsets past the end',
        make: () => {
          const bytes = checkpoint();
          return bytes.subarray(0, bytes.length - 4);
        },
        message: /tensor '[^']+': data_offsets \[\d+, \d+\] run past the end of the data section/,
      },
      {
        what: 'a shape that does not match its bytes',
        make: () => Buffer.concat([lengthPrefixed('{"cls_token":{"dtype":"F32","shape":[1,1,129],"data_offsets":[0,512]}}'), Buffer.alloc(512)]),
        message: /tensor 'cls_token': shape \[1, 1, 129\] of F32 needs 516 bytes but data_offsets \[0, 512\] hold 512/,
      },
      {
        what: 'a missing tensor',
        make: () => {
          const source = SafetensorsFile.fromBuffer(checkpoint());
          const kept = source.names.filter((name) => name !== 'blocks.1.mlp.fc2.bias');
          return serializeSafetensors(kept.map((name) => [name, { dtype: 'F32' as const, shape: source.info(name).shape, data: source.readFloat32(name) }]));
        },
        message: /'blocks\.1\.mlp\.fc2\.bias': missing from the checkpoint/,
      },
      {
        what: 'an unknown dtype',
        make: () => Buffer.concat([lengthPrefixed('{"cls_token":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}'), Buffer.alloc(4)]),
        message: /tensor 'cls_token': unknown dtype "Q4"/,
      },
      {
        what: 'a wrong-rank image file',
        asImages: true,
        make: () => serializeSafetensors([['images', { dtype: 'U8', shape: [4, 32, 32], data: new Uint8Array(4 * 32 * 32) }]]),
        message: /tensor 'images' has shape \[4,32,32\], expected rank 4/,
      },
    ];
    for (const c of cases) {
      it(c.what, () => {
        const bad = path.join(folder, `bad-${c.what.replace(/\W+/g, '-')}.safetensors`);
        fs.writeFileSync(bad, c.make());
        const args = c.asImages
          ? ['embed', '--checkpoint', path.join(PARITY_DIR, 'vit_timm.safetensors'), '--data', `safetensors:${bad}`, '--out', path.join(folder, 'x.safetensors')]
          : ['embed', '--checkpoint', bad, '--data', `safetensors:${imagesFile}`, '--out', path.join(folder, 'x.safetensors')];
        const result = runCli(['--backend', 'wasm', ...args]);
        expect(result.status).to.not.equal(0);
        const errorLines = result.stderr.split('\n').filter((line) => line.startsWith('vitpeft: error:'));
        expect(errorLines, result.stderr).to.have.length(1);
        expect(errorLines[0]).to.include(bad).and.match(c.message);
        expect(result.stderr).to.not.match(/\n\s+at /);
        expect(fs.existsSync(path.join(folder, 'x.safetensors'))).to.equal(false);
      });
    }

    it('--verbose adds the stack trace', () => {
      const result = runCli(['--verbose', 'inspect', path.join(folder, 'nonexistent.safetensors')]);
      expect(result.status).to.not.equal(0);
      expect(result.stderr).to.match(/\n\s+at /);
    });
  });
});

function lengthPrefixed(json: string): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([length, Buffer.from(json)]);
}
