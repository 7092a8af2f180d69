/**
 * What every part of one database shares: its driver and dialect, its configuration, its pool
 * accounting and its counters. The parts themselves (routing, boundaries, scopes, hooks) are
 * functions over it, each in its own module.
 */
import { channels, type ErrorEvent, publish } from '../diagnostics.js';
import type { Dialect, Driver, ErrorKind, IsolationLevel } from '../driver.js';
import { errors, TxScopeError } from '../errors.js';
import {
  checkMilliseconds,
  checkTransactionOptions,
  type DatabaseOptions,
  isolationLevels,
  type TransactionOptions,
} from '../options.js';
import { Pool } from './pool.js';
import { ReplicaSet } from './replicas.js';
import { type StatementConnection, withoutTurns } from './runner.js';
import type { TestPin } from './test-transaction.js';

/** Counters of `db.stats()` that are not the pool's. */
export interface ActivityCounts {
  /** Statements sent, BEGIN/COMMIT/ROLLBACK/SAVEPOINT included. */
  statements: number;
  /** Transactions that sent BEGIN. */
  transactions: number;
  commits: number;
  rollbacks: number;
  activeTransactions: number;
  activeScopes: number;
}

export class Engine {
  readonly name: string;
  readonly dialect: Dialect;
  readonly driver: Driver;
  readonly strict: boolean;
  /** Transaction options every transaction of this database starts from; null when none were given. */
  readonly defaults: Readonly<TransactionOptions> | null;
  readonly pool: Pool;
  /** Read replicas (rule 20); null without `replicas`, and then nothing of them runs. */
  readonly replicas: ReplicaSet | null;
  /**
   * The driver's one-call `query` (take, run, give back), in the shape of a connection for the
   * statement runner; null when the driver has none.
   */
  readonly pooledConnection: StatementConnection | null;
  readonly activity: ActivityCounts = {
    statements: 0,
    transactions: 0,
    commits: 0,
    rollbacks: 0,
    activeTransactions: 0,
    activeScopes: 0,
  };
  /** The test transaction open on this database (`txscope/testing`), which every statement joins. */
  test: TestPin | null = null;
  #closed = false;
  /** The dialect's BEGIN statements, made once per isolation level and access mode. */
  readonly #begin: (readonly string[] | undefined)[] = [];

  constructor(options: DatabaseOptions) {
    this.driver = options.driver;
    this.dialect = options.driver.dialect;
    this.name = options.name ?? 'default';
    this.strict = options.strict ?? false;
    const defaults = checkTransactionOptions(options.defaults, 'defaults', this.dialect.isolationLevels);
    this.defaults = Object.keys(defaults).length > 0 ? defaults : null;
    const leakMs = checkMilliseconds(options.leakDetectionMs, 'leakDetectionMs');
    this.pool = new Pool(this, leakMs);
    const replicas = options.replicas;
    this.replicas =
      replicas === undefined || replicas.length === 0
        ? null
        : new ReplicaSet(this, { replicas, maxLagMs: options.maxReplicaLagMs });
    const driver = this.driver;
    const query = driver.query;
    this.pooledConnection =
      query === undefined
        ? null
        : withoutTurns({
            query: (text, values) => query.call(driver, text, values),
            status: () => 'idle',
            cancel: async () => {},
          });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The error anything asked of a closed database rejects with, or null while it is open. */
  closedError(): TxScopeError | null {
    return this.#closed ? errors.databaseClosed(this.name) : null;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.pool.close();
    await this.replicas?.close();
    await this.driver.close();
  }

  beginStatements(isolation: IsolationLevel | undefined, readOnly: boolean): readonly string[] {
    const slot =
      (isolation === undefined ? 0 : isolationLevels.indexOf(isolation) + 1) * 2 + (readOnly ? 1 : 0);
    let statements = this.#begin[slot];
    if (statements === undefined) {
      statements = Object.freeze([...this.dialect.begin({ isolation, readOnly })]);
      this.#begin[slot] = statements;
    }
    return statements;
  }

  /** How the driver classifies an error; txscope's own errors are none of the driver's kinds. */
  classify(error: unknown): ErrorKind {
    return error instanceof TxScopeError ? 'other' : this.driver.classify(error);
  }

  isConnectionLost(error: unknown): boolean {
    return this.classify(error) === 'connection_lost';
  }

  /** Runs a hook callback; its error is reported (`txscope:error`), never thrown at the caller. */
  async runCallback(cb: () => unknown, at: { source: string; transactionId: number | null }): Promise<void> {
    try {
      await cb();
    } catch (error) {
      this.report(at.source, error, at.transactionId);
    }
  }

  /** Reports an error nobody can be handed (`txscope:error`): a failing callback, a failed rollback. */
  report(source: string, error: unknown, transactionId: number | null): void {
    if (!channels.error.hasSubscribers) return;
    const event: ErrorEvent = { database: this.name, source, error, transactionId };
    publish(channels.error, event);
  }
}
