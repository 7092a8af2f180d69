/**
 * The node:http plumbing every web adapter shares: a scope per request that lasts until
 * the response has finished (or the client has gone), client disconnect wired to the
 * scope's abort signal, request events re-entering the scope, and the Server-Timing entry.
 */
import { AsyncResource } from 'node:async_hooks';
import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Database } from '../core/database.js';
import type { ScopeInfo } from '../core/scope.js';
import { errors } from '../errors.js';
import { carryPosition, checkReadYourWrites, type ReadYourWritesOptions } from './positions.js';

/** Options every web adapter takes. */
export interface ScopeMiddlewareOptions {
  /**
   * Add a `Server-Timing` entry with the request's database time, statements and
   * transactions: `Server-Timing: db;dur=12.3;desc="3 queries, 1 tx"`.
   */
  serverTiming?: boolean;
  /**
   * Read-your-writes across requests and processes, for a database with `replicas` (rule 20):
   * a request that committed a write sets a cookie (or header) with the primary's position after
   * it, and a request that brings it back reads only from a replica that has replayed it.
   * `true`: a `txscope-position` cookie. Off by default.
   */
  readYourWrites?: boolean | ReadYourWritesOptions;
}

/** The request, as the adapters see it: node's own, or any object that emits its events. */
export type RequestLike = Pick<IncomingMessage, 'emit'>;

/** The response, as the adapters see it: node's own `ServerResponse`. */
export type ResponseLike = Pick<
  ServerResponse,
  'writableFinished' | 'headersSent' | 'destroyed' | 'writeHead' | 'getHeader' | 'setHeader' | 'once'
>;

/** One request and its response, with the adapter's options. */
export interface Exchange {
  readonly req: RequestLike;
  readonly res: ResponseLike;
  readonly options: ScopeMiddlewareOptions | undefined;
}

const resources = new WeakMap<object, AsyncResource>();

export const invalid = errors.invalidValue;

/** Checks the database and the options once, when the middleware is created. */
export function checkMiddleware(
  db: unknown,
  options: unknown,
  site: { readonly where: string; readonly extraKeys?: readonly string[] },
): asserts db is Database {
  const { where, extraKeys = [] } = site;
  const candidate = db as Partial<Database> | null | undefined;
  if (candidate === null || typeof candidate !== 'object' || typeof candidate.scope !== 'function') {
    throw invalid(`${where}: db`, "the database from createDatabase() in 'txscope'", db);
  }
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') {
    throw invalid(`${where}: options`, '{ serverTiming?: boolean }', options);
  }
  const known = new Set(['serverTiming', 'readYourWrites', ...extraKeys]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw invalid(`${where}: option "${key}"`, `one of ${[...known].join(', ')}`, key);
  }
  const serverTiming = (options as ScopeMiddlewareOptions).serverTiming;
  if (serverTiming !== undefined && typeof serverTiming !== 'boolean') {
    throw invalid(`${where}: serverTiming`, 'true or false', serverTiming);
  }
  checkReadYourWrites(where, (options as ScopeMiddlewareOptions).readYourWrites);
}

/**
 * Runs `next` inside a fresh scope of `db` bound to this request, and returns what `next`
 * returns (or throws). The scope itself stays open until the response has finished or
 * the client has gone, and `next` has settled: work done after the handler returned but
 * before the response ended still belongs to the request. A client that disconnects
 * before the response finished aborts the scope: its open transaction rolls back and
 * frees its connection, and its later statements reject `ERR_ABORTED`.
 */
export function requestScope<T>(db: Database, exchange: Exchange, next: () => T | Promise<T>): Promise<T> {
  const { req, res, options } = exchange;
  // Already in a scope of this database (the middleware mounted twice, or a test that
  // serves requests inside its own scope): the request joins it, as db.scope() would,
  // without a second Server-Timing entry.
  if (db.current.inScope) {
    try {
      return Promise.resolve(next());
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return new Promise<T>((resolve, reject) => {
    const controller = new AbortController();
    const ended = responseEnded(res, controller);
    let started = false;
    const open = () =>
      db.scope(
        async () => {
          started = true;
          const resource = new AsyncResource('txscope:request');
          resources.set(req, resource);
          bindRequestEvents(req, resource);
          const scope = db.current.scope;
          if (options?.serverTiming === true && scope !== null) addServerTiming(res, scope);
          const readYourWrites = options?.readYourWrites;
          if (readYourWrites !== undefined && readYourWrites !== false && scope !== null)
            carryPosition(req, res, scope, readYourWrites);
          const handled = (async () => next())();
          handled.then(resolve, reject);
          await Promise.allSettled([handled, ended]);
        },
        { signal: controller.signal },
      );
    requestContext(db, open).catch((error: unknown) => {
      // After `next` ran, its own outcome has been delivered; only a scope that never
      // started (a closed database) reports here.
      if (!started) reject(error);
    });
  });
}

/**
 * Runs `open` in the context a request's scope starts from. Requests inherit the async
 * context the server was started from: a scope or transaction still open there (a test
 * serving requests inside its own) is joined; anything else (a startup scope that has
 * ended since) is left behind, so that each request starts fresh.
 */
export function requestContext<T>(db: Database, open: () => Promise<T>): Promise<T> {
  const current = db.current;
  return current.inScope || current.inTransaction ? open() : db.detached(open);
}

/**
 * Runs `fn` in the async context of the request's scope. Frameworks that resume the
 * request in another async context (a body parser driven by socket events) call it
 * where they hand control back.
 */
export function reenter<T>(req: object, fn: () => T): T {
  const resource = resources.get(req);
  return resource === undefined ? fn() : resource.runInAsyncScope(fn);
}

function responseEnded(res: ResponseLike, controller: AbortController): Promise<void> {
  const disconnected = (): void => controller.abort(errors.clientDisconnected());
  if (res.writableFinished) return Promise.resolve();
  if (res.destroyed) {
    disconnected();
    return Promise.resolve();
  }
  return new Promise<void>((resolve) => {
    res.once('finish', resolve);
    res.once('close', () => {
      if (!res.writableFinished) disconnected();
      resolve();
    });
  });
}

/**
 * Node emits a request's 'data' and 'end' events from the socket's async context, not
 * from the one the request handler runs in: a body parser built on them (and whatever
 * it calls next) would lose the scope. Re-enter it for every event of this request.
 */
function bindRequestEvents(req: RequestLike, resource: AsyncResource): void {
  const emit = req.emit;
  req.emit = function emitInScope(this: unknown, ...args: Parameters<IncomingMessage['emit']>) {
    return resource.runInAsyncScope(emit, this, ...args);
  } as IncomingMessage['emit'];
}

/** `db;dur=12.3;desc="3 queries, 1 tx"` from the scope's live counters. */
export function serverTimingEntry(scope: ScopeInfo): string {
  const queries = `${scope.statements} ${scope.statements === 1 ? 'query' : 'queries'}`;
  return `db;dur=${scope.databaseMs.toFixed(1)};desc="${queries}, ${scope.transactions} tx"`;
}

function appendTiming(existing: unknown, entry: string): string {
  if (existing === undefined || existing === null || existing === '') return entry;
  const list = Array.isArray(existing) ? existing.join(', ') : String(existing);
  return `${list}, ${entry}`;
}

/**
 * Adds the entry just before the headers are written: every framework ends in
 * `res.writeHead` (node's `res.end()` and `flushHeaders()` call it too), and by then the
 * handler's statements have run.
 */
function addServerTiming(res: ResponseLike, scope: ScopeInfo): void {
  const writeHead = res.writeHead;
  res.writeHead = function writeHeadWithTiming(this: ResponseLike, ...args: unknown[]) {
    if (!this.headersSent) {
      const entry = serverTimingEntry(scope);
      const last = args.length > 1 ? args[args.length - 1] : undefined;
      // Headers passed to writeHead win over setHeader(): append to theirs when they carry one.
      if (!appendToPassedHeaders(args, last, entry)) {
        this.setHeader('Server-Timing', appendTiming(this.getHeader('Server-Timing'), entry));
      }
    }
    return (writeHead as (...a: unknown[]) => unknown).apply(this, args);
  } as ResponseLike['writeHead'];
}

function appendToPassedHeaders(args: unknown[], last: unknown, entry: string): boolean {
  if (Array.isArray(last)) {
    // The flat raw form: [name, value, name, value, ...].
    const raw = [...(last as OutgoingHttpHeader[])];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (String(raw[i]).toLowerCase() === 'server-timing') {
        raw[i + 1] = appendTiming(raw[i + 1], entry);
        args[args.length - 1] = raw;
        return true;
      }
    }
    return false;
  }
  if (last !== null && typeof last === 'object') {
    const headers = last as OutgoingHttpHeaders;
    const key = Object.keys(headers).find((name) => name.toLowerCase() === 'server-timing');
    if (key === undefined) return false;
    args[args.length - 1] = { ...headers, [key]: appendTiming(headers[key], entry) };
    return true;
  }
  return false;
}
