/** `txscope/postgresjs`: a driver over postgres.js (the `postgres` package) and its own pool. */
import type { Driver, DriverConnection, DriverResult, PoolCounts } from '../../driver.js';
import { errors, type PoolTimeoutDetails } from '../../errors.js';
import { checkPoolNumbers } from '../../options.js';
import {
  defaultAcquireTimeoutMillis,
  defaultMax,
  importPeer,
  LazyPool,
  withAcquireDeadline,
} from '../runtime.js';
import type { CancelTarget } from './cancel.js';
import { postgresDialect } from './dialect.js';
import {
  type PostgresJsBackend,
  PostgresJsConnection,
  type PostgresJsLink,
  type PostgresJsQueryOptions,
  type PostgresJsReservedLike,
  toResult,
} from './postgresjs-connection.js';
import {
  classifyPostgresJsError,
  isLost,
  isSql,
  labelOfOptions,
  labelOfSql,
  type PostgresJsOptions,
  type PostgresJsSqlLike,
  type PostgresModule,
  poolOptionKeys,
} from './postgresjs-options.js';

export {
  classifyPostgresJsError,
  type PostgresJsOptions,
  type PostgresJsParsedOptions,
  type PostgresJsSqlLike,
} from './postgresjs-options.js';

const noop = (): void => {};

/** An autocommit statement on the pool, and the caller's promise it settles. */
interface PooledRun {
  readonly sql: PostgresJsSqlLike;
  readonly text: string;
  readonly values: readonly unknown[];
  readonly attempt: number;
  readonly resolve: (result: DriverResult) => void;
  readonly reject: (error: unknown) => void;
}

/** A turn of the event loop: the socket's close follows its error in the next one. */
const afterClose = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** How long `close()` waits at most for a terminated connection's socket to close. */
const terminateWaitMs = 5000;

class PostgresJsDriver implements Driver {
  readonly dialect = postgresDialect;
  readonly label: string;
  readonly classify = classifyPostgresJsError;
  readonly #options: PostgresJsOptions;
  readonly #acquireTimeoutMillis: number;
  readonly #sql: LazyPool<PostgresJsSqlLike>;
  /** postgres.js's connections seen, by id; dropped when postgres.js says they closed. */
  readonly #links = new Map<number, PostgresJsLink>();
  #reserved = 0;
  #pooledRunning = 0;
  #waiting = 0;
  #closing = false;
  /** A connection was lost since the pool was made (see close()). */
  #lostSeen = false;
  readonly #terminating = new Set<Promise<void>>();
  /** What acquires wait for: connections closing, stale errors being absorbed. */
  readonly #settling = new Set<Promise<void>>();
  readonly #settings = {
    cancelTarget: (backend: PostgresJsBackend) => this.#cancelTarget(backend),
    linked: (link: PostgresJsLink) => {
      this.#links.set(link.id, link);
    },
  };

  /** Autocommit statements tell their connection, for the pool counts; bound ones are prepared. */
  readonly #pooledSimple: PostgresJsQueryOptions = {
    onexecute: (link) => {
      this.#links.set(link.id, link);
      return true;
    },
  };
  readonly #pooledBound: PostgresJsQueryOptions = { ...this.#pooledSimple, prepare: true };

  constructor(source: PostgresJsOptions | PostgresJsSqlLike) {
    if (isSql(source)) {
      this.#options = {};
      this.label = labelOfSql(source.options);
      this.#acquireTimeoutMillis = defaultAcquireTimeoutMillis;
      this.#sql = new LazyPool(this.#watch(source), () => Promise.resolve(source));
    } else {
      this.#options = source;
      this.label = labelOfOptions(source);
      this.#acquireTimeoutMillis = source.acquireTimeoutMillis ?? defaultAcquireTimeoutMillis;
      this.#sql = new LazyPool<PostgresJsSqlLike>(null, () => this.#make());
    }
  }

  async #make(): Promise<PostgresJsSqlLike> {
    const postgres = await importPeer<PostgresModule>('postgres', 'txscope/postgresjs');
    const { url, acquireTimeoutMillis, ...rest } = this.#options;
    const options: Record<string, unknown> = { ...rest, max: rest.max ?? defaultMax };
    return this.#watch(url === undefined ? postgres(options) : postgres(url, options));
  }

  /** Follows postgres.js's `onclose` (chained to the user's own) to keep the pool counts true. */
  #watch(sql: PostgresJsSqlLike): PostgresJsSqlLike {
    const options = sql.options;
    const theirs = options.onclose;
    options.onclose = (id) => {
      this.#links.delete(id);
      theirs?.(id);
    };
    return sql;
  }

  #cancelTarget(backend: PostgresJsBackend): CancelTarget | null {
    const sql = this.#sql.current;
    if (backend.pid === null || backend.secret === null || sql === null) return null;
    // postgres.js reads the key as unsigned; the CancelRequest carries it as a signed Int32.
    const pid = backend.pid | 0;
    const secret = backend.secret | 0;
    const { path, host, port } = sql.options;
    if (path) {
      const socket = /^(.*)\/\.s\.PGSQL\.(\d+)$/.exec(path);
      if (socket !== null) {
        return { host: socket[1] as string, port: Number(socket[2]), processID: pid, secretKey: secret };
      }
    }
    return { host: host[0] ?? 'localhost', port: port[0] ?? 5432, processID: pid, secretKey: secret };
  }

  #details(): PoolTimeoutDetails {
    return {
      label: this.label,
      acquireTimeoutMillis: this.#acquireTimeoutMillis,
      counts: this.counts(),
      kind: 'pool',
    };
  }

  acquire(): Promise<DriverConnection> {
    const sql = this.#sql.current;
    if (sql === null) return Promise.resolve(this.#sql.get()).then((made) => this.#reserve(made));
    return this.#reserve(sql);
  }

  #reserve(sql: PostgresJsSqlLike): Promise<DriverConnection> {
    this.#waiting++;
    // After a loss, the reservation waits (within the deadline) for the dead connection to settle.
    const reserving =
      this.#settling.size === 0
        ? this.#reserveLive(sql)
        : Promise.all(this.#settling).then(() => this.#reserveLive(sql));
    const taking = withAcquireDeadline(reserving, {
      timeoutMs: this.#acquireTimeoutMillis,
      details: () => this.#details(),
      // It came after the caller gave up: straight back to the pool, never leaked.
      late: (reserved) => reserved.release(),
    });
    return taking.then(
      (reserved) => {
        this.#waiting--;
        this.#reserved++;
        return new PostgresJsConnection(reserved, this.#settings, isLost);
      },
      (error: unknown) => {
        this.#waiting--;
        throw error;
      },
    );
  }

  /**
   * `sql.reserve()`, again when it fails for a lost connection: postgres.js keeps the error of a
   * connection that died in the middle of a statement and fails the next open of that slot with
   * it, though the new connection is fine. Nothing ran on a reservation yet, so taking another is
   * safe; the acquire deadline bounds the attempts.
   */
  async #reserveLive(sql: PostgresJsSqlLike): Promise<PostgresJsReservedLike> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await sql.reserve();
      } catch (error) {
        if (attempt >= sql.options.max || !isLost(error) || this.#closing) throw error;
        this.#lostSeen = true;
      }
    }
  }

  query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    const sql = this.#sql.current;
    if (sql === null) return Promise.resolve(this.#sql.get()).then(() => this.query(text, values));
    this.#pooledRunning++;
    return new Promise<DriverResult>((resolve, reject) => {
      this.#pooled({ sql, text, values, attempt: 0, resolve, reject });
    });
  }

  /** One autocommit statement on the pool: one promise (the caller's) however it ends. */
  #pooled(run: PooledRun): void {
    const { sql, text, values } = run;
    const query =
      values.length === 0
        ? sql.unsafe(text, [], this.#pooledSimple)
        : sql.unsafe(text, values as unknown[], this.#pooledBound);
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    // postgres.js queues a statement until a connection is free, with no bound of its own: one
    // still queued at the deadline is taken out of the queue (its cancel does that) and fails.
    // Most are written at once (postgres.js sends it a microtask after `then`): only a statement
    // still unsent then gets a timer.
    const bound = (): void => {
      if (settled || query.state !== null) return;
      timer = setTimeout(() => {
        if (query.state !== null) return;
        settled = true;
        this.#pooledRunning--;
        run.reject(errors.poolTimeout(this.#details()));
        query.cancel();
      }, this.#acquireTimeoutMillis);
    };
    query.then(
      (result) => {
        if (timer !== undefined) clearTimeout(timer);
        if (settled) return;
        settled = true;
        this.#pooledRunning--;
        run.resolve(toResult(result));
      },
      (error: unknown) => {
        if (timer !== undefined) clearTimeout(timer);
        if (settled) return;
        settled = true;
        if (isLost(error)) {
          this.#lostSeen = true;
          // Failed before it was ever sent (the stale error of a dead connection, see
          // #reserveLive): nothing ran, so it runs again.
          if (query.state === null && run.attempt < sql.options.max && !this.#closing) {
            this.#pooled({ ...run, attempt: run.attempt + 1 });
            return;
          }
          if (query.state !== null) this.#settle(afterClose().then(() => this.#absorb()));
        }
        this.#pooledRunning--;
        run.reject(error);
      },
    );
    queueMicrotask(() => queueMicrotask(bound));
  }

  release(connection: DriverConnection, options: { destroy: boolean }): void {
    const c = connection as PostgresJsConnection;
    this.#reserved--;
    c.unlink();
    const link = c.link;
    // A connection postgres.js saw close is already back in its pool's closed queue: releasing it
    // would put it among the open ones. Not closed yet: postgres.js would still count it as reserved.
    const gone = link !== null && link.reserved === null;
    if (gone || c.lost !== null) {
      this.#lostSeen = true;
      const closed = gone || link === null ? Promise.resolve() : this.#terminate(link);
      if (c.lostInFlight) this.#settle(closed.then(() => this.#absorb()));
      return;
    }
    if ((options.destroy || this.#closing) && link !== null) {
      this.#terminate(link);
      return;
    }
    c.reserved.release();
  }

  /**
   * Closes a connection of postgres.js's pool. Until its socket has closed postgres.js still counts
   * it as reserved, and `sql.end()` would wait for it forever: `close()` waits for these first.
   */
  #terminate(link: PostgresJsLink): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, terminateWaitMs);
      link.onclose = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#terminating.add(closed);
    void closed.then(() => this.#terminating.delete(closed));
    link.terminate();
    this.#settle(closed);
    return closed;
  }

  /** Acquires wait for `settling` first (see #absorb). */
  #settle(settling: Promise<void>): void {
    this.#settling.add(settling);
    void settling.then(() => this.#settling.delete(settling));
  }

  /**
   * A connection that died with a statement in flight keeps, inside postgres.js, that statement
   * and the server's FATAL error, and fails the first request of its next open with them. When that
   * request is a `reserve()`, postgres.js also strands it: the next connection to open goes to the
   * failed reservation and is lost to the pool (porsager/postgres#1195, #1199, #1097). So before
   * the next reservation, a few empty autocommit statements (as many as the pool is large, so one
   * reaches the slot that died) take the stale error instead; their failures are expected.
   */
  async #absorb(): Promise<void> {
    const sql = this.#sql.current;
    if (sql === null || this.#closing) return;
    const absorbing: Promise<unknown>[] = [];
    for (let i = 0; i < sql.options.max; i++) absorbing.push(sql.unsafe('').then(noop, noop));
    const timer = new Promise<void>((resolve) => setTimeout(resolve, terminateWaitMs).unref());
    await Promise.race([Promise.all(absorbing), timer]);
  }

  counts(): PoolCounts {
    const max = this.#sql.current?.options.max ?? this.#options.max ?? defaultMax;
    const busy = this.#reserved + this.#pooledRunning;
    const total = Math.min(max, Math.max(this.#links.size, busy));
    return { total, idle: Math.max(0, total - busy), waiting: this.#waiting, max };
  }

  close(): Promise<void> {
    this.#closing = true;
    return this.#sql.close(async (sql) => {
      await Promise.all(this.#terminating);
      // After a connection died in the middle of a statement, postgres.js's end() waits for that
      // statement forever: then nothing of txscope's can still be running, and end() need not wait.
      await sql.end({ timeout: this.#lostSeen ? 0 : null });
    });
  }
}

/**
 * A driver over postgres.js: give it postgres.js options (with `url` for a connection string),
 * or a `Sql` you already have (`db.close()` ends it).
 *
 * @example
 * ```ts
 * import { createDatabase } from 'txscope';
 * import { postgresjs } from 'txscope/postgresjs';
 * export const db = createDatabase({ driver: postgresjs({ url: process.env.DATABASE_URL, max: 10 }) });
 * ```
 */
export function postgresjs(options: PostgresJsOptions | PostgresJsSqlLike): Driver {
  if (options === null || (typeof options !== 'object' && typeof options !== 'function')) {
    throw errors.invalidArgument(
      'postgresjs()',
      'postgres.js options ({ url, max, idle_timeout, … }) or a postgres.js Sql (postgres(url))',
    );
  }
  if (!isSql(options)) {
    checkPoolNumbers('postgresjs', options, { numbers: poolOptionKeys });
    if (options.url !== undefined && typeof options.url !== 'string') {
      throw errors.invalidOption('postgresjs.url', 'a connection string', '(not a string)');
    }
  }
  return new PostgresJsDriver(options);
}
