import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsError, SafetensorsFile, serializeSafetensors, writeSafetensors } from '../../models/checkpoint/safetensors';

function header(json: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([length, Buffer.from(json), data]);
}

describe('safetensors', () => {
  it('round-trips F32, I32, I64 and U8 tensors with metadata, header aligned to 8 bytes', () => {
    const bytes = serializeSafetensors(
      [
        ['weights', { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-8, -7]) }],
        ['labels', { dtype: 'I64', shape: [3], data: new BigInt64Array([0n, 9n, -4n]) }],
        ['index', { dtype: 'I32', shape: [], data: new Int32Array([42]) }],
        ['images', { dtype: 'U8', shape: [1, 2, 2, 1], data: new Uint8Array([0, 127, 128, 255]) }],
      ],
      { purpose: 'test' },
    );
    expect(Number(bytes.readBigUInt64LE(0)) % 8).to.equal(0);
    const file = SafetensorsFile.fromBuffer(bytes, 'mem');
    expect(file.metadata).to.deep.equal({ purpose: 'test' });
    expect(file.names).to.have.members(['weights', 'labels', 'index', 'images']);
    expect([...file.readFloat32('weights')]).to.deep.equal([...new Float32Array([1, -2, 3.5, 0, 1e-8, -7])]);
    expect([...file.readInt32('labels')]).to.deep.equal([0, 9, -4]);
    expect([...file.readInt32('index')]).to.deep.equal([42]);
    expect([...file.readUint8('images')]).to.deep.equal([0, 127, 128, 255]);
    expect(file.info('images').shape).to.deep.equal([1, 2, 2, 1]);
  });

  it('widens F16 and BF16 to float32 exactly', () => {
    // F16: 1.0 = 0x3c00, -2.5 = 0xc100, 65504 = 0x7bff, smallest subnormal 0x0001; BF16: 1.0 = 0x3f80, -0.15625 = 0xbe20
    const f16 = Buffer.alloc(8);
    [0x3c00, 0xc100, 0x7bff, 0x0001].forEach((v, i) => f16.writeUInt16LE(v, i * 2));
    const bf16 = Buffer.alloc(4);
    [0x3f80, 0xbe20].forEach((v, i) => bf16.writeUInt16LE(v, i * 2));
    const json = JSON.stringify({ half: { dtype: 'F16', shape: [4], data_offsets: [0, 8] }, brain: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] } });
    const file = SafetensorsFile.fromBuffer(header(json, Buffer.concat([f16, bf16])));
    expect([...file.readFloat32('half')]).to.deep.equal([1, -2.5, 65504, 2 ** -24]);
    expect([...file.readFloat32('brain')]).to.deep.equal([1, -0.15625]);
  });

  it('writes atomically and reads back from disk', () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-st-'));
    const target = path.join(folder, 'a.safetensors');
    writeSafetensors(target, [['x', { dtype: 'F32', shape: [2], data: new Float32Array([3, 4]) }]]);
    expect(fs.readdirSync(folder)).to.deep.equal(['a.safetensors']);
    const file = SafetensorsFile.open(target);
    expect([...file.readFloat32('x')]).to.deep.equal([3, 4]);
    file.close();
  });

  const bad: Array<[string, Buffer, RegExp]> = [
    ['a file shorter than 8 bytes', Buffer.from([1, 2, 3]), /shorter than the 8-byte header length/],
    ['a header length past the end', (() => { const b = header('{}'); b.writeBigUInt64LE(1000n); return b; })(), /runs past the end of the file/],
    ['a header that is not JSON', header('{"a": '), /not valid JSON/],
    ['duplicate keys', header('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', Buffer.alloc(1)), /duplicate key "a"/],
    ['an unknown dtype', header('{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', Buffer.alloc(1)), /tensor 'a': unknown dtype "F8"/],
    ['offsets past the data', header('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', Buffer.alloc(2)), /tensor 'a': data_offsets \[0, 4\] run past the end/],
    ['a shape that does not match its bytes', header('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', Buffer.alloc(8)), /tensor 'a': shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/],
    ['overlapping tensors', header('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', Buffer.alloc(3)), /tensor 'b'.*overlap/],
    ['a negative shape', header('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}'), /non-negative integers/],
    ['a huge shape', header('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}', Buffer.alloc(4)), /tensor 'a': shape/],
    ['trailing bytes', header('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', Buffer.alloc(5)), /trailing bytes/],
    ['non-string metadata', header('{"__metadata__":{"n":1}}'), /__metadata__.*must be a string/],
  ];
  for (const [what, bytes, message] of bad) {
    it(`rejects ${what} with a SafetensorsError naming the file`, () => {
      expect(() => SafetensorsFile.fromBuffer(bytes, 'bad.safetensors'))
        .to.throw(SafetensorsError, message)
        .with.property('message')
        .that.matches(/^bad\.safetensors: /);
    });
  }

  it('names a missing tensor', () => {
    const file = SafetensorsFile.fromBuffer(serializeSafetensors([]), 'empty.safetensors');
    expect(() => file.readFloat32('pos_embed')).to.throw(SafetensorsError, "empty.safetensors: tensor 'pos_embed': missing from the file");
  });

  it('names a missing file', () => {
    expect(() => SafetensorsFile.open('/nonexistent/x.safetensors')).to.throw(SafetensorsError, '/nonexistent/x.safetensors: no such file');
  });
});
