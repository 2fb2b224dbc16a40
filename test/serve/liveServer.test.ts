import { expect } from 'chai';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as path from 'path';
import { PipelineEvent, StepEvent } from '../../common/events';
import { EventHub } from '../../cli/serve/eventHub';
import { warnIfExposed } from '../../cli/serve/hostWarning';
import { LiveServer, startLiveServer } from '../../cli/serve/liveServer';
import { REPO_ROOT, runCli } from '../helpers/cli';
import { tempFolder } from '../helpers/datasetFixtures';
import { writeRunFolder } from '../helpers/runFolderFixture';
import { pipelineFixture } from '../helpers/pipelineFixtures';

/** A GET with the path sent exactly as given (no normalisation of dots or encodings). */
function rawGet(url: string, requestPath: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: hostname, port, path: requestPath, method: 'GET' }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

interface SseClient {
  readonly messages: Array<{ event: string; data: unknown }>;
  readonly request: http.ClientRequest;
  waitFor(test: (messages: SseClient['messages']) => boolean, timeoutMs?: number): Promise<void>;
}

/** An EventSource-like reader of /runs/<run>/events that collects whole messages. */
function sse(url: string): SseClient {
  const messages: Array<{ event: string; data: unknown }> = [];
  let buffer = '';
  const request = http.get(url, (response) => {
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) messages.push({ event, data: JSON.parse(data) });
      }
    });
  });
  request.on('error', () => undefined);
  return {
    messages,
    request,
    waitFor: async (test, timeoutMs = 5000) => {
      const start = Date.now();
      while (!test(messages)) {
        if (Date.now() - start > timeoutMs) throw new Error(`timed out; got ${messages.map((m) => m.event).join(', ')}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
}

function step(n: number): StepEvent {
  return { kind: 'step', method: 'full', seed: 0, step: n, steps: 100000, epoch: 0, loss: 1 / n, lr: 0.01, imagesPerSecond: 100 };
}

function stepsIn(messages: SseClient['messages']): number[] {
  return messages.filter((m) => m.event === 'events').flatMap((m) => (m.data as PipelineEvent[]).filter((e): e is StepEvent => e.kind === 'step').map((e) => e.step));
}

describe('live view server', function () {
  let root: string;
  let server: LiveServer;
  let outside: string;

  before(async () => {
    const base = tempFolder('vitpeft-serve-');
    root = path.join(base, 'out');
    writeRunFolder(path.join(root, 'grid'));
    writeRunFolder(path.join(root, 'older'), { name: 'older' });
    outside = path.join(base, 'secret');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'results.csv'), 'SECRET');
    fs.symlinkSync(path.join(outside, 'results.csv'), path.join(root, 'grid', 'leak.csv'));
    fs.symlinkSync(outside, path.join(root, 'grid', 'leakdir'));
    fs.symlinkSync(outside, path.join(root, 'escape'));
    server = await startLiveServer({ root, port: 0, pollMs: 50 });
  });

  after(() => server.close());

  it('lists the run folders and serves their pages and their own files', async () => {
    const runs = JSON.parse((await rawGet(server.url, '/runs.json')).body) as Array<{ name: string; href: string }>;
    expect(runs.map((r) => r.name).sort()).to.deep.equal(['grid', 'older']);
    const page = await rawGet(server.url, '/runs/grid/');
    expect(page.status).to.equal(200);
    expect(page.body).to.include('window.VITPEFT_LIVE').and.to.include('vegaEmbed');
    const file = await rawGet(server.url, '/runs/grid/files/results.csv');
    expect(file.status).to.equal(200);
    expect(file.body).to.equal(fs.readFileSync(path.join(root, 'grid', 'results.csv'), 'utf8'));
    expect((await rawGet(server.url, '/')).body).to.include('/runs/grid/').and.to.include('/runs/older/');
  });

  it("answers 404 to '..', encoded dots and slashes, absolute paths and symlinks leading out of out/", async () => {
    const attempts = [
      '/runs/grid/files/../../secret/results.csv',
      '/runs/grid/files/%2e%2e/%2e%2e/secret/results.csv',
      '/runs/grid/files/%2E%2E%2F%2E%2E%2Fsecret%2Fresults.csv',
      '/runs/grid/files/..%2f..%2f..%2fetc%2fpasswd',
      '/runs/grid/files//etc/passwd',
      '/runs/grid/files/%2fetc%2fpasswd',
      '/runs/%2e%2e/files/secret/results.csv',
      '/runs/..%2fsecret/files/results.csv',
      '/etc/passwd',
      `/runs/grid/files/${encodeURIComponent(path.join(outside, 'results.csv'))}`,
      '/runs/grid/files/leak.csv',
      '/runs/grid/files/leakdir/results.csv',
      '/runs/escape/files/results.csv',
      '/runs/escape/',
      '/runs/grid/files/',
      '/runs/grid/files/%00',
    ];
    for (const attempt of attempts) {
      const response = await rawGet(server.url, attempt);
      expect(response.status, attempt).to.equal(404);
      expect(response.body, attempt).to.not.include('SECRET').and.to.not.include('root:');
    }
  });

  it('sends the history first, then the live tail, and picks up rows appended by a run elsewhere', async () => {
    const client = sse(`${server.url}/runs/older/events`);
    try {
      await client.waitFor((m) => m.length >= 1);
      expect(client.messages[0].event).to.equal('history');
      const history = client.messages[0].data as { events: Array<{ kind: string }>; info: { run: string } };
      expect(history.info.run).to.equal('older');
      expect(history.events.filter((e) => e.kind === 'step')).to.have.length(256);
      fs.appendFileSync(path.join(root, 'older', 'metrics.csv'), 'older,full,0,65,0,0.1,0.001,500\nolder,full,0,66,0,0.09,0.001,5');
      await client.waitFor((m) => stepsIn(m).includes(65));
      expect(stepsIn(client.messages)).to.deep.equal([65]);
      fs.appendFileSync(path.join(root, 'older', 'metrics.csv'), '00\n');
      await client.waitFor((m) => stepsIn(m).includes(66));
      // A run started afresh in the folder: its files shrink, every browser gets the history again.
      fs.writeFileSync(path.join(root, 'older', 'metrics.csv'), 'run,method,seed,step,epoch,loss,lr,images_per_second\nolder,full,0,1,0,0.5,0.001,500\n');
      await client.waitFor((m) => m.filter((x) => x.event === 'history').length === 2);
    } finally {
      client.request.destroy();
    }
  });

  it('a hundred browsers at once and one that leaves mid-stream cost the run nothing: publishing stays an array push', async () => {
    const hub = new EventHub();
    const liveRoot = tempFolder('vitpeft-serve-');
    const live = await startLiveServer({ root: liveRoot, port: 0, hubs: new Map([['live', hub]]) });
    const clients: SseClient[] = [];
    try {
      hub.publish({ kind: 'run-start', run: 'live', outDir: path.join(liveRoot, 'live'), backend: 'wasm', model: 'vit', jobs: [{ method: 'full', seed: 0, steps: 100000 }], knnK: [20], knnHeadline: 20 });
      for (let i = 0; i < 100; i++) clients.push(sse(`${live.url}/runs/live/events`));
      await Promise.all(clients.map((c) => c.waitFor((m) => m.length >= 1)));
      // A browser that connects after the run started still learns its plan (the files do not hold it).
      const history = clients[0].messages[0].data as { events: PipelineEvent[] };
      expect(history.events[0]).to.deep.include({ kind: 'run-start', jobs: [{ method: 'full', seed: 0, steps: 100000 }] });
      const channel = live.channel('live')!;
      expect(channel.clientCount).to.equal(100);
      // The crowd shared one read of the run folder.
      expect(channel.historyReads).to.be.at.most(2);
      const leaver = clients.pop()!;
      let published = 0;
      let publishing = 0;
      for (let batch = 0; batch < 20; batch++) {
        const start = process.hrtime.bigint();
        for (let i = 0; i < 100; i++) hub.publish(step(++published));
        publishing += Number(process.hrtime.bigint() - start) / 1e6;
        if (batch === 5) leaver.request.destroy();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(publishing, 'ms spent publishing 2,000 events to 99 browsers').to.be.below(500);
      await Promise.all(clients.map((c) => c.waitFor((m) => stepsIn(m).length === published, 10_000)));
      for (const client of clients) expect(stepsIn(client.messages)).to.deep.equal(Array.from({ length: published }, (_, i) => i + 1));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(channel.clientCount).to.equal(99);
    } finally {
      for (const client of clients) client.request.destroy();
      await live.close();
    }
  });

  it('vitpeft run --serve: a hundred browsers at once, half leaving mid-run, and the run still ends with every step sent', async () => {
    const fixture = await pipelineFixture({
      methods: [{ method: 'linear' }],
      train: { steps: 100, batchSize: 16, optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0, warmupSteps: 2, schedule: 'cosine', seed: 0 },
      evaluate: { every: 50, batchSize: 32, knn: { k: [5, 10], temperature: 0.07, headline: 10 } },
    });
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'vitpeft.js'), '--threads', '1', 'run', fixture.file, '--serve', '0', '--out', path.join(fixture.folder, 'out'), '--no-save-models'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let stderr = '';
    child.stderr.setEncoding('utf8');
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk: string) => {
        stderr += chunk;
        const match = /live view at (http:\/\/\S+)/.exec(stderr);
        if (match) resolve(match[1]);
      });
      void exited.then(() => reject(new Error(stderr)));
    });
    const clients = Array.from({ length: 100 }, () => sse(`${url}events`));
    try {
      await clients[0].waitFor((m) => stepsIn(m).length > 0, 60_000);
      for (const leaver of clients.splice(0, 50)) leaver.request.destroy();
      expect(await exited, stderr).to.equal(0);
      for (const client of clients) {
        // History and tail together: every step of the run exactly once, and its end.
        await client.waitFor((m) => m.some((x) => x.event === 'events' && (x.data as Array<{ kind: string }>).some((e) => e.kind === 'run-end')), 5000);
        const history = client.messages.find((m) => m.event === 'history')!.data as { events: StepEvent[] };
        const steps = [...history.events.filter((e) => e.kind === 'step').map((e) => e.step), ...stepsIn(client.messages)];
        expect(steps).to.deep.equal(Array.from({ length: 100 }, (_, i) => i + 1));
      }
    } finally {
      for (const client of clients) client.request.destroy();
      child.kill();
    }
  });

  it('a port in use is a one-line error naming it', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      let message = '';
      await startLiveServer({ root, port }).catch((error: Error) => (message = error.message));
      expect(message).to.equal(`port ${port} on 127.0.0.1 is in use; choose another port (0 picks any free one)`);
      const cli = runCli(['serve', path.join(root, 'grid'), '--port', String(port)], { timeoutMs: 60_000 });
      expect(cli.status).to.equal(2);
      expect(cli.stderr.trim().split('\n')).to.have.length(1);
      expect(cli.stderr).to.include(`port ${port} on 127.0.0.1 is in use`);
    } finally {
      blocker.close();
    }
  });

  it('warns when listening beyond this machine, and only then', () => {
    const warnings: string[] = [];
    for (const host of ['127.0.0.1', 'localhost', '::1', '0.0.0.0', '192.168.1.5']) warnIfExposed(host, '/runs/out', (text) => warnings.push(text));
    expect(warnings).to.deep.equal([
      'vitpeft: warning: serving on 0.0.0.0: anyone who can reach this address can read the run folders under /runs/out (read-only, no authentication)\n',
      'vitpeft: warning: serving on 192.168.1.5: anyone who can reach this address can read the run folders under /runs/out (read-only, no authentication)\n',
    ]);
  });

  it('vitpeft serve of a folder that is not a run is a one-line error naming it', () => {
    const empty = tempFolder('vitpeft-serve-');
    const cli = runCli(['serve', empty, '--port', '0'], { timeoutMs: 60_000 });
    expect(cli.status).to.equal(2);
    expect(cli.stderr.trim()).to.equal(`vitpeft: error: ${empty}: not a run folder and holds none (expected results.csv, metrics.csv or run.json in it or in its subfolders)`);
  });
});
