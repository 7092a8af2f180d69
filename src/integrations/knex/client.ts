/**
 * Knex clients over a txscope database: subclasses of Knex's own dialect clients (pg, mysql2,
 * better-sqlite3), so the query and schema compilers, the response handling and the transaction
 * API stay Knex's. Only where Knex would touch a connection (acquire, release, `_query`,
 * `_stream`, a transaction's BEGIN/COMMIT) do these go through txscope instead.
 */
import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';
import type { Database } from '../../core/database.js';
import type { DialectName } from '../../driver.js';
import { errors, type TxScopeError } from '../../errors.js';
import { asHandle, type KnexQuery, respond, TxScopeKnexConnection } from './connection.js';
import { type KnexTransactionClass, txscopeTransactionClass } from './transaction.js';

/** What Knex itself says of an empty query, as the catalog's error. */
const emptyQuery = (): TxScopeError =>
  errors.invalidArgument('a Knex query', 'SQL text, and this one is empty (a builder with nothing to run?)');

/** Where the txscope database travels in the Knex config (Knex copies its config to every client it derives). */
export const databaseKey: unique symbol = Symbol('txscope database');

/** The part of Knex's client (lib/client.js and its dialects) txscope builds on. */
interface KnexClientCore {
  readonly config: Record<PropertyKey, unknown>;
  _formatBindings?(bindings: readonly unknown[] | undefined): unknown[];
}

type KnexClientClass = new (config: Record<PropertyKey, unknown>) => KnexClientCore;

const require = createRequire(import.meta.url);

/** Knex's dialect clients, by txscope dialect: the packages they drive are never loaded. */
const dialectModules: Record<DialectName, string> = {
  postgres: 'knex/lib/dialects/postgres/index.js',
  mysql: 'knex/lib/dialects/mysql2/index.js',
  sqlite: 'knex/lib/dialects/better-sqlite3/index.js',
};

function knexModule<T>(path: string): T {
  try {
    return require(path) as T;
  } catch (error) {
    throw errors.missingPeer('txscope/knex', 'knex', error);
  }
}

function noPool(): never {
  throw errors.unsupported(
    'txscope/knex',
    "Knex's own pool and connections",
    'the txscope database owns the connections: configure them on its driver',
  );
}

function cancelRefused(): Error {
  return errors.unsupported(
    'txscope/knex',
    '.timeout(ms, { cancel: true })',
    'give the transaction timeoutMs (db.transaction or @Transactional): txscope cancels the statement on the server',
  );
}

function clientClass(dialect: DialectName): KnexClientClass {
  const Base = knexModule<KnexClientClass>(dialectModules[dialect]);
  const Transaction = txscopeTransactionClass(
    knexModule<KnexTransactionClass>('knex/lib/execution/transaction.js'),
  );

  return class TxScopeKnexClient extends Base {
    /** The handle module-level queries run on: the caller's async context. */
    readonly txscopeConnection: TxScopeKnexConnection;

    constructor(config: Record<PropertyKey, unknown>) {
      super(config);
      this.txscopeConnection = new TxScopeKnexConnection(config[databaseKey] as Database);
    }

    // Knex's pool is never made: the config has no connection, and initialize() makes none.
    initializePool(): void {}

    acquireRawConnection(): Promise<never> {
      return Promise.reject(noPool());
    }

    destroyRawConnection(): Promise<void> {
      return Promise.resolve();
    }

    acquireConnection(): Promise<TxScopeKnexConnection> {
      return Promise.resolve(this.txscopeConnection);
    }

    releaseConnection(): Promise<void> {
      return Promise.resolve();
    }

    // The pool is txscope's: db.close() closes it, knex.destroy() leaves it alone.
    async destroy(callback?: (error?: unknown) => void): Promise<void> {
      if (typeof callback === 'function') callback();
    }

    // Called by `.timeout(ms, { cancel: true })` as the query is built: refused there, before it runs.
    assertCanCancelQuery(): never {
      throw cancelRefused();
    }

    cancelQuery(): Promise<never> {
      return Promise.reject(cancelRefused());
    }

    transaction(container: unknown, config: unknown, outerTx: unknown): unknown {
      return new Transaction(this, container, config, outerTx);
    }

    _query(connection: unknown, query: KnexQuery): Promise<KnexQuery> {
      if (!query.sql) throw emptyQuery();
      const handle = asHandle(connection);
      const values =
        this._formatBindings === undefined ? (query.bindings ?? []) : this._formatBindings(query.bindings);
      return handle.query(query.sql, values).then((result) => respond(dialect, query, result));
    }

    /**
     * txscope results arrive whole: the stream gets the buffered rows. It runs where the query
     * would (the ambient transaction, or the `trx`'s), never on a connection of its own.
     */
    _stream(connection: unknown, query: KnexQuery, stream: Transform): Promise<void> {
      if (!query.sql) throw emptyQuery();
      const handle = asHandle(connection);
      const values =
        this._formatBindings === undefined ? (query.bindings ?? []) : this._formatBindings(query.bindings);
      return new Promise<void>((resolve, reject) => {
        stream.on('error', reject);
        stream.on('end', () => resolve());
        handle.query(query.sql, values).then(
          (result) => {
            for (const row of result.rows) stream.write(row);
            stream.end();
          },
          (error: unknown) => {
            stream.emit('error', error);
          },
        );
      });
    }
  };
}

const classes = new Map<DialectName, KnexClientClass>();

/** The Knex client class for a txscope dialect, made once. */
export function knexClientFor(dialect: DialectName): KnexClientClass {
  let made = classes.get(dialect);
  if (made === undefined) {
    made = clientClass(dialect);
    classes.set(dialect, made);
  }
  return made;
}
