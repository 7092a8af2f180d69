/**
 * What Knex holds as a "connection" over txscope: no connection, a routing handle. Each statement
 * goes through `db.query`, in the async context the handle carries (the ambient one, or a
 * transaction's), so txscope decides where it runs.
 */
import type { Database } from '../../core/database.js';
import type { QueryResult } from '../../driver.js';
import { errors } from '../../errors.js';
import type { ControlledTransaction } from '../controlled.js';
import { ambient, type Runner } from '../shared.js';

/** A query as Knex hands it to a client's `_query`, and the response the dialect reads back. */
export interface KnexQuery {
  sql: string;
  bindings?: readonly unknown[] | undefined;
  method?: string | undefined;
  returning?: unknown;
  options?: unknown;
  response?: unknown;
  context?: unknown;
}

/** What a txscope result may carry beyond `rows` and `rowCount`, depending on the driver. */
interface ResultExtras {
  command?: string | undefined;
  insertId?: number | string | bigint | undefined;
}

/**
 * A handle Knex passes around as its connection. `run` is where its statements execute: the
 * caller's context (module-level queries) or a txscope transaction's (a Knex `trx`).
 */
export class TxScopeKnexConnection {
  /** Set by Knex itself (events, debug output). */
  __knexUid?: string;
  __knexTxId?: string | undefined;

  constructor(
    readonly db: Database,
    readonly run: Runner = ambient,
    /** The txscope transaction this handle belongs to, when it is a `trx`'s. */
    readonly transaction: ControlledTransaction | null = null,
  ) {}

  query(text: string, values: readonly unknown[]): Promise<QueryResult<unknown> & ResultExtras> {
    const run = this.run;
    const db = this.db;
    return run === ambient ? db.query(text, values) : run(() => db.query(text, values));
  }
}

/** The handle behind a Knex connection; anything else came from another client. */
export function asHandle(connection: unknown): TxScopeKnexConnection {
  if (connection instanceof TxScopeKnexConnection) return connection;
  throw errors.unsupported(
    'txscope/knex',
    'a connection of another Knex client (or a raw driver connection) in .connection() or { connection }',
    'use the Knex createKnex() returns; txscope takes connections itself',
  );
}

/** PostgreSQL's command tag as Knex's pg client reads it, when the driver did not report one (PGlite). */
function commandOf(method: string | undefined): string | undefined {
  switch (method) {
    case 'select':
    case 'first':
    case 'pluck':
      return 'SELECT';
    case 'insert':
      return 'INSERT';
    case 'update':
    case 'counter':
      return 'UPDATE';
    case 'del':
      return 'DELETE';
    default:
      return undefined;
  }
}

/**
 * Puts a txscope result where the dialect's own `processResponse` reads it: node-postgres's
 * result object, mysql2's `[rows, fields]` (an OK packet for writes), better-sqlite3's rows or
 * run info with `context` `{ lastID, changes }`.
 */
export function respond(
  dialect: Database['dialect']['name'],
  query: KnexQuery,
  result: QueryResult<unknown> & ResultExtras,
): KnexQuery {
  switch (dialect) {
    case 'postgres':
      query.response =
        result.command === undefined ? { ...result, command: commandOf(query.method) } : result;
      break;
    case 'mysql':
      query.response =
        'insertId' in result
          ? [{ insertId: result.insertId, affectedRows: result.rowCount }, undefined]
          : [result.rows, []];
      break;
    case 'sqlite':
      if ('insertId' in result) {
        query.response = { changes: result.rowCount, lastInsertRowid: result.insertId };
        query.context = { lastID: result.insertId, changes: result.rowCount };
      } else {
        query.response = result.rows;
      }
      break;
  }
  return query;
}
