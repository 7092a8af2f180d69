// What the live page shows: recent requests (statements, transactions, connection time) and the
// pool's occupancy over time, fed by txscope's diagnostics channels and pushed as server-sent events.
import diagnostics from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished } from 'node:stream';
import type { ConnectionEvent, Database, RouteEvent, ScopeInfo } from 'txscope';

export interface RequestRecord {
  id: number;
  method: string;
  path: string;
  status: number;
  ms: number;
  statements: number;
  transactions: number;
  heldMs: number;
  at: number;
  /** With read replicas only: where the request's read-only transactions ran (`primary` or a replica's label). */
  readTargets?: string[];
}

export interface PoolSample {
  t: number;
  checkedOut: number;
  max: number;
  waiting: number;
}

const keptRequests = 50;
const keptSamples = 300;

export class Activity {
  readonly requests: RequestRecord[] = [];
  readonly samples: PoolSample[] = [];
  readonly #clients = new Set<ServerResponse>();
  readonly #held = new Map<number, number>();
  /** With replicas: the targets of each tracked request's read-only transactions. */
  readonly #targets = new Map<number, Set<string>>();
  readonly #replicated: boolean;
  readonly #timer: NodeJS.Timeout;
  #lastSample = '';
  #seq = 0;

  constructor(readonly db: Database) {
    diagnostics.subscribe('txscope:release', this.#onRelease);
    diagnostics.subscribe('txscope:acquire', this.#onPoolChange);
    this.#replicated = db.stats().targets !== undefined;
    if (this.#replicated) diagnostics.subscribe('txscope:route', this.#onRoute);
    this.#timer = setInterval(() => this.#sample(false), 250);
    this.#timer.unref();
  }

  readonly #onRelease = (message: unknown): void => {
    const event = message as ConnectionEvent;
    // Only for requests still being tracked: the connection of an aborted request can be released
    // after its response closed, and an entry added then would never be removed.
    const held = event.scopeId === null ? undefined : this.#held.get(event.scopeId);
    if (event.scopeId !== null && held !== undefined) this.#held.set(event.scopeId, held + event.durationMs);
    this.#sample(true);
  };

  readonly #onPoolChange = (): void => this.#sample(true);

  readonly #onRoute = (message: unknown): void => {
    const event = message as RouteEvent;
    if (event.scopeId !== null) this.#targets.get(event.scopeId)?.add(event.target);
  };

  #sample(force: boolean): void {
    const stats = this.db.stats();
    const sample = {
      t: Date.now(),
      checkedOut: stats.checkedOut,
      max: stats.pool.max,
      waiting: stats.pool.waiting,
    };
    const key = `${sample.checkedOut}/${sample.waiting}`;
    if (!force && key === this.#lastSample && this.samples.length > 0) return;
    this.#lastSample = key;
    this.samples.push(sample);
    if (this.samples.length > keptSamples) this.samples.shift();
    this.#broadcast('pool', sample);
  }

  /** Express middleware, mounted after txscope's: records each request when its response is done. */
  track = (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const scope: ScopeInfo | null = this.db.current.scope;
    const started = performance.now();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/events' || scope === null) {
      next();
      return;
    }
    this.#held.set(scope.id, 0);
    if (this.#replicated) this.#targets.set(scope.id, new Set());
    // Not res.once('close'): a client that hung up early may have closed the response already.
    finished(res, () => {
      const record: RequestRecord = {
        id: ++this.#seq,
        method: req.method ?? 'GET',
        path,
        status: res.statusCode,
        ms: round(performance.now() - started),
        statements: scope.statements,
        transactions: scope.transactions,
        heldMs: round(this.#held.get(scope.id) ?? 0),
        at: Date.now(),
      };
      const targets = this.#targets.get(scope.id);
      if (targets !== undefined) record.readTargets = [...targets];
      this.#targets.delete(scope.id);
      this.#held.delete(scope.id);
      this.requests.push(record);
      if (this.requests.length > keptRequests) this.requests.shift();
      this.#broadcast('request', record);
    });
    next();
  };

  /** GET /events: the history so far, then every new request and pool sample. */
  stream = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.write(
      `event: history\ndata: ${JSON.stringify({ requests: this.requests, samples: this.samples })}\n\n`,
    );
    this.#clients.add(res);
    req.once('close', () => this.#clients.delete(res));
  };

  #broadcast(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const client of this.#clients) client.write(frame);
  }

  close(): void {
    clearInterval(this.#timer);
    diagnostics.unsubscribe('txscope:release', this.#onRelease);
    diagnostics.unsubscribe('txscope:acquire', this.#onPoolChange);
    if (this.#replicated) diagnostics.unsubscribe('txscope:route', this.#onRoute);
    for (const client of this.#clients) client.end();
    this.#clients.clear();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
