// One run's Server-Sent Events: every browser first gets the run's history, then the live tail.
// The run never waits for a browser: new events are queued (an array push) and written to all
// clients together every FLUSH_MS; a client whose unsent output passes MAX_BUFFERED_BYTES is
// dropped (its browser reconnects and starts again from the history). The history is read from
// the run folder at most once per HISTORY_TTL_MS and shared by the clients that connect meanwhile,
// with the events since, so a crowd of browsers costs the run one read of its files.

import type { ServerResponse } from 'http';
import type { PipelineEvent } from '../../common/events';
import type { RunHistory } from '../../stages/reporter/report/runHistory';
import type { LiveSource } from './eventHub';

export const FLUSH_MS = 200;
export const HISTORY_TTL_MS = 2000;
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const HEARTBEAT_MS = 15_000;

function message(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class RunChannel {
  private readonly clients = new Set<ServerResponse>();
  private pending: PipelineEvent[] = [];
  private snapshot: { text: string; at: number; since: PipelineEvent[] } | undefined;
  private stopSource: (() => void) | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** How many times the history was read (for tests: a crowd shares one read). */
  historyReads = 0;

  constructor(
    private readonly source: LiveSource,
    private readonly readHistory: () => RunHistory,
  ) {}

  get clientCount(): number {
    return this.clients.size;
  }

  connect(response: ServerResponse): void {
    response.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    response.write('retry: 2000\n\n');
    this.flush();
    if (!this.stopSource) {
      // Follow first, then read the history in the same turn of the event loop: nothing falls between.
      this.stopSource = this.source.follow((events) => this.receive(events));
      this.snapshot = undefined;
    }
    const now = Date.now();
    if (!this.snapshot || now - this.snapshot.at > HISTORY_TTL_MS) this.snapshot = { text: this.historyMessage(), at: now, since: [] };
    response.write(this.snapshot.text);
    if (this.snapshot.since.length > 0) response.write(message('events', this.snapshot.since));
    this.clients.add(response);
    response.on('close', () => this.disconnect(response));
    this.heartbeat ??= setInterval(() => this.broadcast(': keep-alive\n\n'), HEARTBEAT_MS);
  }

  /** Sends every client the history afresh (the run folder was started over). */
  reset(): void {
    this.pending = [];
    this.snapshot = { text: this.historyMessage(), at: Date.now(), since: [] };
    this.broadcast(this.snapshot.text);
  }

  close(): void {
    this.flush();
    for (const client of this.clients) client.end();
    this.clients.clear();
    this.stop();
  }

  private historyMessage(): string {
    this.historyReads += 1;
    try {
      return message('history', this.readHistory());
    } catch (error) {
      return message('failure', { message: (error as Error).message });
    }
  }

  private receive(events: readonly PipelineEvent[]): void {
    if (this.clients.size === 0) return;
    this.pending.push(...events);
    this.snapshot?.since.push(...events);
    // The shared history grows stale rather than large: past this, the next client reads the folder.
    if (this.snapshot && this.snapshot.since.length > 5000) this.snapshot = undefined;
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.length === 0) return;
    const text = message('events', this.pending);
    this.pending = [];
    this.broadcast(text);
  }

  private broadcast(text: string): void {
    for (const client of this.clients) {
      if (client.writableLength > MAX_BUFFERED_BYTES) {
        client.destroy();
        this.disconnect(client);
        continue;
      }
      client.write(text);
    }
  }

  private disconnect(response: ServerResponse): void {
    this.clients.delete(response);
    if (this.clients.size === 0) this.stop();
  }

  private stop(): void {
    this.stopSource?.();
    this.stopSource = undefined;
    this.snapshot = undefined;
    this.pending = [];
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }
}
