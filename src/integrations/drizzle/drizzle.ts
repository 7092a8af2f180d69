import { type Casing, Column, is, type Logger, SQL } from 'drizzle-orm';
import { MySqlTable } from 'drizzle-orm/mysql-core';
import {
  MySqlProxyTransaction,
  type MySqlRemoteDatabase,
  drizzle as mysqlProxy,
} from 'drizzle-orm/mysql-proxy';
import { PgTable } from 'drizzle-orm/pg-core';
import { PgProxyTransaction, type PgRemoteDatabase, drizzle as pgProxy } from 'drizzle-orm/pg-proxy';
import { SQLiteTable } from 'drizzle-orm/sqlite-core';
import {
  SQLiteProxyTransaction,
  type SqliteRemoteDatabase,
  drizzle as sqliteProxy,
} from 'drizzle-orm/sqlite-proxy';
import type { Database } from '../../core/database.js';
import type { QueryResult } from '../../driver.js';
import { errors, type TxScopeError } from '../../errors.js';
import type { TransactionOptions } from '../../options.js';
import { ambient, assertDatabase, type Runner } from '../shared.js';

/** The SQL dialects Drizzle has a database class for. */
export type DrizzleDialect = 'postgres' | 'mysql' | 'sqlite';

/** The dialect a Drizzle schema's tables belong to. */
export type DialectOfSchema<TSchema extends Record<string, unknown>> = [
  Extract<TSchema[keyof TSchema], PgTable>,
] extends [never]
  ? [Extract<TSchema[keyof TSchema], MySqlTable>] extends [never]
    ? [Extract<TSchema[keyof TSchema], SQLiteTable>] extends [never]
      ? DrizzleDialect
      : 'sqlite'
    : 'mysql'
  : 'postgres';

/** The Drizzle database `createDrizzle` returns for a dialect: Drizzle's own class, full types. */
export type DrizzleDatabase<
  D extends DrizzleDialect,
  TSchema extends Record<string, unknown> = Record<string, never>,
> = D extends 'postgres'
  ? PgRemoteDatabase<TSchema>
  : D extends 'mysql'
    ? MySqlRemoteDatabase<TSchema>
    : SqliteRemoteDatabase<TSchema>;

/** Drizzle's own options, less the driver. */
export interface CreateDrizzleOptions<TSchema extends Record<string, unknown>, D extends DrizzleDialect> {
  /** Tables and relations, for `db.query.*` (relational queries); its tables decide the types' dialect. */
  schema?: TSchema;
  /** The dialect, when no schema says it; must match the txscope driver's. */
  dialect?: D;
  logger?: boolean | Logger;
  casing?: Casing;
}

type Method = 'all' | 'execute' | 'run' | 'get' | 'values';

/** What Drizzle hands a prepared query about its selection. */
interface SelectedField {
  path: string[];
  field: unknown;
}

/** The runtime part of a Drizzle proxy session txscope uses. */
interface ProxySession {
  prepareQuery(...args: unknown[]): { client: unknown };
  transaction(fn: (tx: unknown) => Promise<unknown>, config?: Record<string, unknown>): Promise<unknown>;
  dialect: unknown;
  schema: unknown;
  [runner]?: Runner;
}

const runner = Symbol('txscope runner');

/** What a txscope result may carry beyond `rows` and `rowCount`, depending on the driver. */
interface ResultExtras {
  insertId?: unknown;
}

/** The column name each selected field comes back under, or null when the database picks it. */
function outputName(field: unknown): string | null {
  if (is(field, Column)) return field.name;
  if (is(field, SQL.Aliased)) return field.fieldAlias;
  return null;
}

/**
 * Drizzle maps rows by position; txscope returns them as objects, where two columns of
 * the same name (a join of two `id`s) would collapse into one. When names may collide,
 * the statement is wrapped so that every column gets a name of its own.
 */
function positional(db: Database, text: string, fields: readonly SelectedField[] | undefined): string {
  if (fields === undefined || fields.length < 2) return text;
  const names = new Set<string>();
  let collide = false;
  for (const { field } of fields) {
    const name = outputName(field);
    if (name === null || names.has(name)) {
      collide = true;
      break;
    }
    names.add(name);
  }
  if (!collide) return text;
  const q = db.dialect.quoteIdentifier;
  const columns = fields.map((_, i) => q(`c${i}`)).join(', ');
  return `with ${q('txscope_rows')} (${columns}) as (${text}) select * from ${q('txscope_rows')}`;
}

function toArrays(rows: unknown[], expected: number | undefined): unknown[][] {
  return rows.map((row) => {
    if (Array.isArray(row)) return row;
    const values = Object.values(row as Record<string, unknown>);
    if (expected !== undefined && values.length !== expected) {
      throw errors.unsupported(
        'txscope/drizzle',
        `a statement that returns ${values.length} column(s) where Drizzle expects ${expected}`,
        'give every selected column a distinct name with .as()',
      );
    }
    return values;
  });
}

/** A query as Drizzle's proxy hands it over, with the selection of the prepared query it belongs to. */
interface ProxyQuery {
  readonly text: string;
  readonly params: unknown[];
  readonly method: Method;
  readonly fields: readonly SelectedField[] | undefined;
}

async function run(db: Database, session: ProxySession, query: ProxyQuery): Promise<{ rows: unknown[] }> {
  const { text, params, method, fields } = query;
  const exec = session[runner] ?? ambient;
  const arrays = method === 'all' || method === 'values' || method === 'get';
  const statement = arrays ? positional(db, text, fields) : text;
  const result = (await exec(() => db.query(statement, params))) as QueryResult<unknown> & ResultExtras;
  const expected = fields?.length;
  switch (method) {
    case 'all':
    case 'values':
      return { rows: toArrays(result.rows, expected) };
    case 'get':
      // Drizzle's SQLite proxy takes the one row itself (or undefined) for get().
      return { rows: toArrays(result.rows.slice(0, 1), expected)[0] as unknown as unknown[] };
    case 'run':
      return { rows: [], changes: result.rowCount } as { rows: unknown[] };
    case 'execute':
      // Drizzle's MySQL proxy reads a write's outcome from the first row, as mysql2 reports it.
      if (db.dialect.name === 'mysql' && 'insertId' in result) {
        return { rows: [{ insertId: Number(result.insertId ?? 0), affectedRows: result.rowCount }] };
      }
      return { rows: result.rows };
  }
}

function invalid(what: string, instead: string): TxScopeError {
  return errors.unsupported('txscope/drizzle', what, instead);
}

function transactionOptions(config: Record<string, unknown> | undefined): TransactionOptions {
  const options: TransactionOptions = { propagation: 'nested' };
  if (config === undefined) return options;
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue;
    switch (key) {
      case 'isolationLevel':
        options.isolation = value as TransactionOptions['isolation'];
        break;
      case 'accessMode':
        options.readOnly = value === 'read only';
        break;
      default:
        throw invalid(
          `transaction option ${key}`,
          'txscope begins the transaction: use isolationLevel and accessMode, or db.transaction options',
        );
    }
  }
  return options;
}

/**
 * Makes a Drizzle proxy database run through txscope: each prepared query gets a callback
 * that knows its selection, and `.transaction()` becomes a txscope transaction (a savepoint
 * where one is active) whose callback runs inside it.
 */
function attach(
  db: Database,
  session: ProxySession,
  makeTransaction: (session: ProxySession) => { transaction: unknown },
): void {
  const prepare = session.prepareQuery;
  if (typeof prepare !== 'function' || typeof session.transaction !== 'function') {
    throw invalid(
      'this drizzle-orm version (it has no proxy session to build on)',
      'use drizzle-orm >= 0.36',
    );
  }
  // Drizzle passes the selection second for every dialect: prepareQuery(query, fields, ...).
  session.prepareQuery = function (this: ProxySession, ...args: unknown[]) {
    const prepared = prepare.apply(this, args);
    const fields = args[1] as SelectedField[] | undefined;
    prepared.client = (text: string, params: unknown[], method: Method) =>
      run(db, this, { text, params, method, fields });
    return prepared;
  };
  const transaction = function (
    this: ProxySession,
    fn: (tx: unknown) => Promise<unknown>,
    config?: Record<string, unknown>,
  ): Promise<unknown> {
    let options: TransactionOptions;
    try {
      options = transactionOptions(config);
    } catch (error) {
      return Promise.reject(error);
    }
    return db.transaction(() => {
      // The transaction object keeps to this transaction, wherever it is passed.
      const bound = Object.create(this) as ProxySession;
      bound[runner] = db.bind(<R>(fn: () => R): R => fn()) as Runner;
      const tx = makeTransaction(bound);
      tx.transaction = (inner: (tx: unknown) => Promise<unknown>, innerConfig?: Record<string, unknown>) =>
        transaction.call(bound, inner, innerConfig);
      return fn(tx);
    }, options);
  };
  session.transaction = transaction;
}

function sessionOf(database: object): ProxySession {
  return (database as { session: ProxySession }).session;
}

/**
 * A Drizzle database over a txscope database, for the driver's dialect: every query runs
 * through txscope, inside the ambient transaction on its connection, outside it in
 * autocommit. `.transaction(fn)` is a txscope transaction (a savepoint where one is already
 * active) and `fn` runs inside it, so module-level repositories join as well.
 *
 * @example
 * ```ts
 * import { createDrizzle } from 'txscope/drizzle';
 * import * as schema from './schema.js';
 * export const orm = createDrizzle(db, { schema });
 *
 * export const findUser = (id: number) => orm.query.users.findFirst({ where: eq(schema.users.id, id) });
 * ```
 */
export function createDrizzle<
  TSchema extends Record<string, unknown> = Record<string, never>,
  D extends DrizzleDialect = DialectOfSchema<TSchema>,
>(
  db: Database,
  options: CreateDrizzleOptions<TSchema, D> & ({ schema: TSchema } | { dialect: D }),
): DrizzleDatabase<D, TSchema>;
export function createDrizzle(
  db: Database,
  options: CreateDrizzleOptions<Record<string, unknown>, DrizzleDialect>,
): unknown {
  assertDatabase(db, 'createDrizzle(db, options)');
  if (options === null || typeof options !== 'object') {
    throw errors.invalidArgument(
      'createDrizzle(db, options)',
      'options { schema?, dialect?, logger?, casing? }',
    );
  }
  const { schema, dialect, logger, casing } = options;
  const name = db.dialect.name;
  if (dialect !== undefined && dialect !== name) {
    throw errors.invalidOption('createDrizzle dialect', `'${name}', the txscope driver's dialect`, dialect);
  }
  if (schema !== undefined) {
    if (schema === null || typeof schema !== 'object') {
      throw errors.invalidOption('createDrizzle schema', 'an object of tables and relations', schema);
    }
    for (const [key, table] of Object.entries(schema)) {
      const tableDialect = is(table, PgTable)
        ? 'postgres'
        : is(table, MySqlTable)
          ? 'mysql'
          : is(table, SQLiteTable)
            ? 'sqlite'
            : null;
      if (tableDialect !== null && tableDialect !== name) {
        throw errors.invalidOption(
          `createDrizzle schema.${key}`,
          `a ${name} table (the txscope driver speaks ${name})`,
          `a ${tableDialect} table`,
        );
      }
    }
  }
  const config = { schema, logger, casing };
  let base: ProxySession | undefined;
  // Session-level statements call the proxy callback as a method of the session (or a bound copy).
  const callback = function (this: unknown, text: string, params: unknown[], method: Method) {
    const session =
      this !== null && typeof this === 'object' ? (this as ProxySession) : (base as ProxySession);
    return run(db, session, { text, params, method, fields: undefined });
  };
  let database: object;
  let makeTransaction: (s: ProxySession) => { transaction: unknown };
  switch (name) {
    case 'postgres':
      database = pgProxy(callback, config);
      makeTransaction = (s) => new PgProxyTransaction(s.dialect as never, s as never, s.schema as never);
      break;
    case 'mysql':
      database = mysqlProxy(callback, config);
      makeTransaction = (s) =>
        new MySqlProxyTransaction(s.dialect as never, s as never, s.schema as never, 0, 'default');
      break;
    case 'sqlite': {
      // A batch is atomic in Drizzle's SQLite drivers: here, one txscope transaction (joined if one is active).
      const batch = (queries: { sql: string; params: unknown[]; method: Method }[]) =>
        db.transaction(async () => {
          const results: { rows: unknown[] }[] = [];
          for (const q of queries)
            results.push(
              await run(db, base as ProxySession, {
                text: q.sql,
                params: q.params,
                method: q.method,
                fields: undefined,
              }),
            );
          return results;
        });
      database = sqliteProxy(callback, batch as never, config);
      makeTransaction = (s) =>
        new SQLiteProxyTransaction('async', s.dialect as never, s as never, s.schema as never);
      break;
    }
  }
  base = sessionOf(database);
  attach(db, base, makeTransaction);
  return database;
}
