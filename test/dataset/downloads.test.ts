import { expect } from 'chai';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as path from 'path';
import { DOWNLOADS, DownloadError, DownloadFile, declaredSha256, defaultCacheDir, downloadFile, fetchDownload } from '../../stages/dataset/downloads';
import { tempFolder } from '../helpers/datasetFixtures';

const BODY = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) % 256));
const MD5 = crypto.createHash('md5').update(BODY).digest('hex');
const SHA256 = crypto.createHash('sha256').update(BODY).digest('hex');

describe('dataset: downloads (local HTTP server on 127.0.0.1)', () => {
  let server: http.Server;
  let base: string;
  let requests: string[];

  before(async () => {
    requests = [];
    server = http.createServer((request, response) => {
      requests.push(request.url ?? '');
      switch (request.url) {
        case '/ok/fixture.bin':
          response.writeHead(200, { 'Content-Length': BODY.length });
          response.end(BODY);
          return;
        case '/moved/fixture.bin':
          response.writeHead(302, { Location: '/ok/fixture.bin' });
          response.end();
          return;
        case '/truncated/fixture.bin':
          response.writeHead(200, { 'Content-Length': BODY.length });
          response.write(BODY.subarray(0, 40_000), () => response.socket?.destroy());
          return;
        case '/wrong/fixture.bin': {
          const corrupt = Buffer.from(BODY);
          corrupt[5000] ^= 0xff;
          response.writeHead(200, { 'Content-Length': corrupt.length });
          response.end(corrupt);
          return;
        }
        case '/hub-changed/fixture.bin':
          // A hub whose file is now BODY: its resolve answer declares BODY's digest and size.
          response.writeHead(302, { Location: '/ok/fixture.bin', 'X-Linked-Etag': `"${SHA256}"`, 'X-Linked-Size': String(BODY.length) });
          response.end();
          return;
        case '/hub-corrupt/fixture.bin':
          // A hub declaring the pinned file, whose transfer is damaged on the way.
          response.writeHead(302, { Location: '/wrong/fixture.bin', 'X-Linked-Etag': `"${SHA256}"`, 'X-Linked-Size': String(BODY.length) });
          response.end();
          return;
        default:
          response.writeHead(404, { 'Content-Type': 'text/plain' });
          response.end('not here');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function fixture(...routes: string[]): DownloadFile {
    return { name: 'fixture.bin', urls: routes.map((route) => `${base}/${route}/fixture.bin`), checksum: { algorithm: 'md5', hex: MD5 } };
  }

  async function failure(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (error) {
      return error as Error;
    }
    throw new Error('expected a failure');
  }

  describe('a host that declares its digest (Hugging Face X-Linked-Etag)', () => {
    const declaring = (route: string, pinned: string): DownloadFile => ({
      name: 'fixture.bin',
      urls: [`${base}/${route}/fixture.bin`],
      checksum: { algorithm: 'sha256', hex: pinned },
      declaredDigest: 'x-linked-etag',
    });
    const OLD_PIN = crypto.createHash('sha256').update('the file as it was pinned').digest('hex');

    it('reads the digest from the redirect and accepts a download that matches the pin', async () => {
      const folder = path.join(tempFolder(), 'hub');
      const result = await downloadFile(declaring('hub-changed', SHA256), folder);
      expect(result.bytes).to.equal(BODY.length);
      expect(fs.readdirSync(folder)).to.deep.equal(['fixture.bin']);
    });

    it('pin and download disagree but the hub declares what it served: the hub\'s file changed; kept aside, not used', async () => {
      const folder = path.join(tempFolder(), 'hub');
      const error = await failure(downloadFile(declaring('hub-changed', OLD_PIN), folder));
      const aside = path.join(folder, `fixture.bin.sha256-${SHA256.slice(0, 12)}`);
      expect(error).to.be.instanceOf(DownloadError);
      expect(error.message).to.contain(`the host's file changed since vitpeft pinned it: pinned sha256 ${OLD_PIN}, but the host declares and serves sha256 ${SHA256} (${BODY.length} bytes)`);
      expect(error.message).to.contain(`kept aside at ${aside} and not used`);
      expect(fs.readdirSync(folder)).to.deep.equal([path.basename(aside)]);
      expect(fs.readFileSync(aside).equals(BODY)).to.equal(true);
    });

    it('the hub declares the pinned digest but the bytes differ: a corrupt download, nothing kept', async () => {
      const folder = path.join(tempFolder(), 'hub');
      const error = await failure(downloadFile(declaring('hub-corrupt', SHA256), folder));
      expect(error).to.be.instanceOf(DownloadError);
      expect(error.message).to.match(/the host declares the pinned digest\); the download is corrupt or truncated/);
      expect(fs.readdirSync(folder)).to.deep.equal([]);
    });

    it('reads a sha256 out of ETag forms, and nothing else', () => {
      expect(declaredSha256(`"${SHA256}"`)).to.equal(SHA256);
      expect(declaredSha256(`W/"${SHA256.toUpperCase()}"`)).to.equal(SHA256);
      expect(declaredSha256('"abc123"')).to.equal(undefined);
      expect(declaredSha256(null)).to.equal(undefined);
    });

    it('the real checkpoint entry reads the hub\'s digest', () => {
      expect(DOWNLOADS['dino-vitb16'].files[0].declaredDigest).to.equal('x-linked-etag');
    });
  });

  it('downloads, verifies the checksum and renames into place; a second fetch reuses the verified file', async () => {
    const folder = path.join(tempFolder(), 'cache', 'fixture');
    const progress: number[] = [];
    const result = await downloadFile(fixture('ok'), folder, { onProgress: (received) => progress.push(received) });
    expect(result).to.deep.equal({ path: path.join(folder, 'fixture.bin'), bytes: BODY.length, reused: false, url: `${base}/ok/fixture.bin` });
    expect(fs.readFileSync(result.path).equals(BODY)).to.equal(true);
    expect(fs.readdirSync(folder)).to.deep.equal(['fixture.bin']);
    expect(progress[progress.length - 1]).to.equal(BODY.length);
    const before = requests.length;
    const again = await downloadFile({ ...fixture('ok'), checksum: { algorithm: 'sha256', hex: SHA256 } }, folder);
    expect(again.reused).to.equal(true);
    expect(requests.length).to.equal(before);
  });

  it('follows redirects and falls back to a mirror', async () => {
    const folder = tempFolder();
    expect((await downloadFile(fixture('moved'), folder)).reused).to.equal(false);
    fs.rmSync(path.join(folder, 'fixture.bin'));
    const result = await downloadFile(fixture('missing', 'ok'), folder);
    expect(result.url).to.equal(`${base}/ok/fixture.bin`);
  });

  const failures: Array<[string, string, RegExp]> = [
    ['a truncated body', 'truncated', /connection broke after \d+ bytes of 100000|received \d+ bytes but the server announced 100000/],
    ['a wrong checksum', 'wrong', new RegExp(`md5 is [0-9a-f]{32} but the published checksum is ${MD5}`)],
    ['a 404', 'missing', /server answered 404 Not Found/],
  ];
  for (const [what, route, reason] of failures) {
    it(`fails on ${what}, leaving no file behind and saying where to put the file by hand`, async () => {
      const folder = tempFolder();
      const error = await failure(downloadFile(fixture(route), folder));
      const target = path.join(folder, 'fixture.bin');
      expect(error).to.be.instanceOf(DownloadError);
      expect(error.message).to.match(reason);
      expect(error.message.startsWith(`${target}: download failed`)).to.equal(true);
      expect(error.message).to.contain(`put it at ${target} (md5 ${MD5})`);
      expect(fs.readdirSync(folder)).to.deep.equal([]);
    });
  }

  it('replaces a corrupt existing file only with a verified one', async () => {
    const folder = tempFolder();
    const target = path.join(folder, 'fixture.bin');
    fs.writeFileSync(target, 'half a file');
    await failure(downloadFile(fixture('wrong'), folder));
    expect(fs.readFileSync(target, 'utf8')).to.equal('half a file');
    await downloadFile(fixture('ok'), folder);
    expect(fs.readFileSync(target).equals(BODY)).to.equal(true);
  });

  it('fails fast when nothing answers (offline), with the manual instructions', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const folder = tempFolder();
    const started = Date.now();
    const error = await failure(fetchDownload({ name: 'x', description: 'x', folder: 'x', files: [{ ...fixture(), urls: [`http://127.0.0.1:${port}/fixture.bin`] }], usage: () => '' }, folder));
    expect(Date.now() - started).to.be.below(5000);
    expect(error.message).to.match(/cannot connect \(ECONNREFUSED.*is this machine offline\?.*To install it by hand, download http:\/\/127\.0\.0\.1:\d+\/fixture\.bin and put it at/);
    expect(fs.readdirSync(folder)).to.deep.equal([]);
  });

  it('knows the official locations and checksums, and where the cache is', () => {
    expect(DOWNLOADS.cifar100.files[0].checksum.hex).to.equal('03b5dce01913d631647c71ecec9e9cb8');
    expect(DOWNLOADS['dino-vitb16'].files[0].urls[0]).to.equal('https://huggingface.co/timm/vit_base_patch16_224.dino/resolve/main/model.safetensors');
    expect(DOWNLOADS['fashion-mnist'].files.map((f) => f.name)).to.have.length(4);
    expect(defaultCacheDir({ VITPEFT_CACHE: '/data/c' })).to.equal('/data/c');
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/x' })).to.equal('/x/vitpeft');
  });
});
