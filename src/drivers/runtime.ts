/**
 * What every driver shares, written once: the lazy import of its peer package, the acquire
 * deadline, the FIFO of a one-connection driver, a label without the password, lifetime jitter
 * and pool-size options. Each driver keeps only what is its own.
 */
import type { PoolCounts } from '../driver.js';
import { errors, type PoolTimeoutDetails } from '../errors.js';

export { type Release, Turns } from '../core/turns.js';

/** How long an acquire waits by default before `ERR_POOL_TIMEOUT`. */
export const defaultAcquireTimeoutMillis = 10_000;
/** Pool size when none is given. */
export const defaultMax = 10;

const peers = new Map<string, Promise<unknown>>();

/**
 * Imports an optional peer dependency on first use, once. A missing package is
 * `ERR_INVALID_OPTION` naming the subpath and the install command.
 */
export function importPeer<T>(pkg: string, subpath: string): Promise<T> {
  let loading = peers.get(pkg);
  if (loading === undefined) {
    loading = import(pkg).then(
      (module: { default?: unknown }) => module.default ?? module,
      (error: unknown) => {
        peers.delete(pkg);
        throw errors.missingPeer(subpath, pkg.split('/')[0] as string, error);
      },
    );
    peers.set(pkg, loading);
  }
  return loading as Promise<T>;
}

/** `database@host:port` from a connection URL, never the user or the password. */
export function labelOfUrl(url: string, fallbackDatabase: string): string {
  try {
    const parsed = new URL(url);
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || fallbackDatabase;
    return `${database}@${parsed.hostname}${parsed.port ? `:${parsed.port}` : ''}`;
  } catch {
    return fallbackDatabase;
  }
}

/** `database@host:port` from separate settings. */
export function labelOfParts(database: string | undefined, host: string, port: number | undefined): string {
  return `${database || 'default'}@${host}${port ? `:${port}` : ''}`;
}

/** Up to 10% less than `seconds`, so connections opened together do not all expire together. */
export function jitteredLifetimeMs(seconds: number): number {
  return seconds * 1000 * (1 - Math.random() * 0.1);
}

/**
 * Settles like `taking`, or rejects with `ERR_POOL_TIMEOUT` past the deadline; a connection that
 * arrives after that goes to `late` (back to the pool), never leaked.
 */
export function withAcquireDeadline<C>(
  taking: Promise<C>,
  deadline: { timeoutMs: number; details: () => PoolTimeoutDetails; late: (connection: C) => void },
): Promise<C> {
  return new Promise<C>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(errors.poolTimeout(deadline.details()));
    }, deadline.timeoutMs);
    taking.then(
      (connection) => {
        if (settled) return deadline.late(connection);
        settled = true;
        clearTimeout(timer);
        resolve(connection);
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A driver's pool (or its one connection): given by the user, or made on first use, so a
 * database created and closed unused never connects. Closed once, whether made yet or not.
 */
export class LazyPool<P> {
  #pool: P | null;
  #making: Promise<P> | null = null;
  #closed = false;

  constructor(
    given: P | null,
    readonly make: () => Promise<P>,
  ) {
    this.#pool = given;
  }

  /** The pool, once there is one. */
  get current(): P | null {
    return this.#pool;
  }

  get(): P | Promise<P> {
    if (this.#pool !== null) return this.#pool;
    this.#making ??= this.make().then(
      (pool) => {
        this.#pool = pool;
        return pool;
      },
      (error: unknown) => {
        this.#making = null;
        throw error;
      },
    );
    return this.#making;
  }

  /** Ends the pool with `end`, once; waits for one still being made. */
  async close(end: (pool: P) => unknown): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pool = this.#pool ?? (this.#making === null ? null : await this.#making.catch(() => null));
    if (pool !== null) await end(pool);
  }
}

/** Savepoint statements as PostgreSQL, MySQL and SQLite all write them. */
export const standardSavepoints = {
  savepoint: (name: string) => `SAVEPOINT ${name}`,
  releaseSavepoint: (name: string) => `RELEASE SAVEPOINT ${name}`,
  rollbackToSavepoint: (name: string) => `ROLLBACK TO SAVEPOINT ${name}`,
} as const;

/** The counts of a driver with one connection that its holders take turns on. */
export function singleConnectionCounts(open: boolean, busy: boolean, waiting: number): PoolCounts {
  const total = open ? 1 : 0;
  return { total, idle: open && !busy ? 1 : 0, waiting, max: 1 };
}
