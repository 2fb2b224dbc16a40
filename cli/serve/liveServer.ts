// The live view's HTTP server (node:http): a read-only window on the run folders under one output
// root. Routes: / (the runs), /runs.json, /runs/<run>/ (the report page, live), /runs/<run>/events
// (Server-Sent Events: history, then the live tail), /runs/<run>/files/<file> (the run folder's
// own files). A run name must be one of the root's run folders, a file must resolve inside its run
// folder; anything else is a 404, so `..`, encoded dots, absolute paths and symlinks leading out
// get nothing.

import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { RunHistory, isRunFolder, readRunHistory } from '../../stages/reporter/report/runHistory';
import { reportHtml } from '../../stages/reporter/report/reportHtml';
import type { RunStartEvent } from '../../common/events';
import { UsageError } from '../errors';
import type { EventHub } from './eventHub';
import { FolderFollower } from './folderFollower';
import { RunChannel } from './runChannel';

export const DEFAULT_PORT = 6006;

export interface LiveServerOptions {
  /** The output root whose run folders are served (out/). */
  readonly root: string;
  readonly host?: string;
  /** 0: any free port. */
  readonly port?: number;
  /** Runs of this process, by folder name: their events come from the hub, not from their files. */
  readonly hubs?: ReadonlyMap<string, EventHub>;
  /** How often a run started elsewhere is polled for new rows (ms). */
  readonly pollMs?: number;
}

export interface LiveServer {
  readonly url: string;
  /** The page of one run. */
  runUrl(name: string): string;
  channel(name: string): RunChannel | undefined;
  close(): Promise<void>;
}

interface RunEntry {
  readonly name: string;
  readonly folder: string;
  readonly live: boolean;
  readonly modified: number;
}

const CONTENT_TYPES: Record<string, string> = {
  '.csv': 'text/csv; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.html': 'text/html; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
};

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function inside(parent: string, child: string): boolean {
  const relative = path.relative(parent, child);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

export async function startLiveServer(options: LiveServerOptions): Promise<LiveServer> {
  const root = path.resolve(options.root);
  const hubs = options.hubs ?? new Map<string, EventHub>();
  const channels = new Map<string, RunChannel>();
  // The files do not record a run's plan (its jobs): a late browser gets it from the run-start kept here.
  const starts = new Map<string, RunStartEvent>();
  const stopRemembering = [...hubs].map(([name, hub]) =>
    hub.follow((events) => {
      for (const event of events) if (event.kind === 'run-start') starts.set(name, event);
    }),
  );

  /** The run folders directly under the root (a symlink leading out of it is not one), and this process's runs. */
  const runs = (): RunEntry[] => {
    const realRoot = fs.existsSync(root) ? fs.realpathSync(root) : root;
    const entries: RunEntry[] = [];
    const names = new Set<string>(hubs.keys());
    if (fs.existsSync(root)) for (const entry of fs.readdirSync(root, { withFileTypes: true })) if (entry.isDirectory()) names.add(entry.name);
    for (const name of names) {
      const folder = path.join(root, name);
      const live = hubs.has(name);
      if (!live && !isRunFolder(folder)) continue;
      if (fs.existsSync(folder) && !inside(realRoot, fs.realpathSync(folder))) continue;
      entries.push({ name, folder, live, modified: fs.existsSync(folder) ? fs.statSync(folder).mtimeMs : Date.now() });
    }
    return entries.sort((a, b) => Number(b.live) - Number(a.live) || b.modified - a.modified);
  };

  const history = (entry: RunEntry): RunHistory => {
    const start = starts.get(entry.name);
    const read: RunHistory = isRunFolder(entry.folder) ? readRunHistory(entry.folder) : { info: { run: entry.name, folder: entry.folder, knnK: [], knnHeadline: 20, timings: [] }, events: [], finished: false, interrupted: false };
    return start ? { ...read, events: [start, ...read.events] } : read;
  };

  const channelFor = (entry: RunEntry): RunChannel => {
    let channel = channels.get(entry.name);
    if (!channel) {
      const hub = hubs.get(entry.name);
      const source = hub ?? new FolderFollower(entry.folder, () => channels.get(entry.name)?.reset(), options.pollMs);
      channel = new RunChannel(source, () => history(entry));
      channels.set(entry.name, channel);
    }
    return channel;
  };

  const runHref = (name: string) => `/runs/${encodeURIComponent(name)}/`;

  const send = (response: http.ServerResponse, status: number, type: string, body: string | Buffer) => {
    response.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' });
    response.end(body);
  };
  const notFound = (response: http.ServerResponse) => send(response, 404, 'text/plain; charset=utf-8', 'not found\n');

  const listPage = (): string => {
    const items = runs()
      .map((run) => `<li><a href="${runHref(run.name)}">${escapeHtml(run.name)}</a>${run.live ? ' <b>live</b>' : ''} <small>${new Date(run.modified).toISOString().replace('T', ' ').slice(0, 19)} UTC</small></li>`)
      .join('\n');
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>vitpeft runs</title><style>body{font-family:Helvetica,Arial,sans-serif;margin:24px}li{margin:6px 0}small{color:#667}</style></head><body><h1>Runs in ${escapeHtml(root)}</h1><ul>${items || '<li>no runs yet</li>'}</ul></body></html>\n`;
  };

  const serveFile = (response: http.ServerResponse, folder: string, segments: string[], head: boolean) => {
    if (segments.length === 0 || segments.some((s) => s === '' || s === '.' || s === '..' || /[\\/\0]/.test(s))) return notFound(response);
    const target = path.join(folder, ...segments);
    let real: string;
    try {
      real = fs.realpathSync(target);
    } catch {
      return notFound(response);
    }
    if (!inside(fs.realpathSync(folder), real) || !fs.statSync(real).isFile()) return notFound(response);
    const type = CONTENT_TYPES[path.extname(real).toLowerCase()] ?? 'application/octet-stream';
    const body = fs.readFileSync(real);
    if (head) {
      response.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length });
      return response.end();
    }
    send(response, 200, type, body);
  };

  const handle = (request: http.IncomingMessage, response: http.ServerResponse) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD' });
      return response.end();
    }
    const raw = (request.url ?? '/').split('?')[0];
    // Segments are split before decoding: an encoded slash or dot stays inside its segment.
    let segments: string[];
    try {
      segments = raw.split('/').slice(1).map((s) => decodeURIComponent(s));
    } catch {
      return notFound(response);
    }
    if (raw === '/') return send(response, 200, 'text/html; charset=utf-8', listPage());
    if (raw === '/runs.json') return send(response, 200, 'application/json; charset=utf-8', JSON.stringify(runs().map((run) => ({ name: run.name, href: runHref(run.name), live: run.live, modified: run.modified }))));
    if (segments[0] !== 'runs' || segments.length < 2) return notFound(response);
    const entry = runs().find((run) => run.name === segments[1]);
    if (!entry) return notFound(response);
    const rest = segments.slice(2);
    if (rest.length === 0) {
      response.writeHead(301, { Location: runHref(entry.name) });
      return response.end();
    }
    if (rest.length === 1 && rest[0] === '') {
      const files = fs.existsSync(entry.folder) ? fs.readdirSync(entry.folder).filter((name) => /\.(csv|json|svg|html)$/.test(name)).sort() : [];
      return send(response, 200, 'text/html; charset=utf-8', reportHtml({ live: { run: entry.name, events: 'events', runs: '/runs.json' }, files }));
    }
    if (rest.length === 1 && rest[0] === 'events') return channelFor(entry).connect(response);
    if (rest[0] === 'files') return serveFile(response, entry.folder, rest.slice(1), request.method === 'HEAD');
    notFound(response);
  };

  const server = http.createServer((request, response) => {
    try {
      handle(request, response);
    } catch (error) {
      if (!response.headersSent) send(response, 500, 'text/plain; charset=utf-8', `${(error as Error).message}\n`);
      else response.destroy();
    }
  });
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? DEFAULT_PORT;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') reject(new UsageError(`port ${port} on ${host} is in use; choose another port (0 picks any free one)`));
      else if (error.code === 'EACCES') reject(new UsageError(`port ${port} on ${host}: permission denied; choose a port above 1023`));
      else if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') reject(new UsageError(`--host ${host}: not an address of this machine`));
      else reject(error);
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;
  return {
    url,
    runUrl: (name: string) => `${url}${runHref(name)}`,
    channel: (name: string) => channels.get(name),
    close: () =>
      new Promise<void>((resolve) => {
        for (const stop of stopRemembering) stop();
        for (const channel of channels.values()) channel.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
