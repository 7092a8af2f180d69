import { AsyncLocalStorage } from 'node:async_hooks';
import { ErrorCode, TxScopeError } from '../errors.js';
import type { Database, QueryResult, TransactionOptions } from '../index.js';

/*
 * The structural subset of Prisma's driver adapter interface (`@prisma/driver-adapter-utils`,
 * Prisma 6.16+ / 7) that txscope implements. Prisma checks adapters by shape, so nothing of
 * Prisma is imported here, at run time or in the types.
 */

/** Prisma's provider names. */
export type PrismaProvider = 'postgres' | 'mysql' | 'sqlite';

/** How Prisma describes a bound argument. */
export interface PrismaArgType {
  scalarType: string;
  dbType?: string;
  arity: 'scalar' | 'list';
}

/** A statement as Prisma hands it to an adapter. */
export interface PrismaSqlQuery {
  sql: string;
  args: unknown[];
  argTypes: PrismaArgType[];
}

/** Prisma's column type codes (`ColumnTypeEnum` of `@prisma/driver-adapter-utils`). */
export type PrismaColumnType =
  | 0
  | 1
  | 2
  | 3
  | 4
  | 5
  | 6
  | 7
  | 8
  | 9
  | 10
  | 11
  | 12
  | 13
  | 14
  | 15
  | 64
  | 65
  | 66
  | 67
  | 68
  | 69
  | 70
  | 71
  | 72
  | 73
  | 74
  | 75
  | 76
  | 77
  | 78
  | 128;

/** A result set as Prisma expects it: columns by position, with their types. */
export interface PrismaSqlResultSet {
  columnTypes: PrismaColumnType[];
  columnNames: string[];
  rows: unknown[][];
  lastInsertId?: string;
}

/** Statements run by Prisma, in or out of a transaction. */
export interface PrismaQueryable {
  readonly provider: PrismaProvider;
  readonly adapterName: string;
  queryRaw(query: PrismaSqlQuery): Promise<PrismaSqlResultSet>;
  executeRaw(query: PrismaSqlQuery): Promise<number>;
}

/** A transaction Prisma opened (`$transaction`). */
export interface PrismaTransaction extends PrismaQueryable {
  readonly options: { usePhantomQuery: boolean };
  commit(): Promise<void>;
  rollback(): Promise<void>;
  createSavepoint(name: string): Promise<void>;
  rollbackToSavepoint(name: string): Promise<void>;
  releaseSavepoint(name: string): Promise<void>;
}

/** Prisma's connected adapter. */
export interface PrismaDriverAdapter extends PrismaQueryable {
  executeScript(script: string): Promise<void>;
  startTransaction(isolationLevel?: string): Promise<PrismaTransaction>;
  getConnectionInfo(): { supportsRelationJoins: boolean; maxBindValues?: number };
  dispose(): Promise<void>;
}

/** What `new PrismaClient({ adapter })` takes. */
export interface PrismaDriverAdapterFactory {
  readonly provider: PrismaProvider;
  readonly adapterName: string;
  connect(): Promise<PrismaDriverAdapter>;
}

type Runner = <R>(fn: () => R) => R;
const ambient: Runner = (fn) => fn();

/** Prisma's column type codes (`ColumnTypeEnum`). */
const Column = {
  Int32: 0,
  Int64: 1,
  Double: 3,
  Numeric: 4,
  Boolean: 5,
  Text: 7,
  DateTime: 10,
  Json: 11,
  Bytes: 13,
  Int32Array: 64,
  Int64Array: 65,
  DoubleArray: 67,
  BooleanArray: 69,
  TextArray: 71,
  DateTimeArray: 74,
  JsonArray: 75,
  BytesArray: 77,
  UnknownNumber: 128,
} as const;

const arrayOf: Partial<Record<PrismaColumnType, PrismaColumnType>> = {
  [Column.Int32]: Column.Int32Array,
  [Column.Int64]: Column.Int64Array,
  [Column.Double]: Column.DoubleArray,
  [Column.Boolean]: Column.BooleanArray,
  [Column.Text]: Column.TextArray,
  [Column.DateTime]: Column.DateTimeArray,
  [Column.Json]: Column.JsonArray,
  [Column.Bytes]: Column.BytesArray,
};

/**
 * txscope results carry values, not column metadata: the type of a column is read off its
 * first non-null value. Model queries do not depend on it (Prisma maps by its schema);
 * `$queryRaw` results do.
 */
function typeOf(value: unknown): PrismaColumnType {
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) && Math.abs(value) <= 0x7fffffff ? Column.Int32 : Column.Double;
    case 'bigint':
      return Column.Int64;
    case 'boolean':
      return Column.Boolean;
    case 'string':
      return Column.Text;
    case 'object':
      if (value instanceof Date) return Column.DateTime;
      if (value instanceof Uint8Array) return Column.Bytes;
      if (Array.isArray(value)) {
        const first = value.find((v) => v !== null && v !== undefined);
        return first === undefined ? Column.TextArray : (arrayOf[typeOf(first)] ?? Column.JsonArray);
      }
      return Column.Json;
    default:
      return Column.Text;
  }
}

function toValue(value: unknown, type: PrismaColumnType): unknown {
  if (value === null || value === undefined) return null;
  switch (type) {
    case Column.DateTime:
      return value instanceof Date ? value.toISOString() : value;
    case Column.Json:
      return typeof value === 'string' ? value : JSON.stringify(value);
    case Column.Int64:
      return typeof value === 'bigint' ? value.toString() : value;
    case Column.DateTimeArray:
    case Column.JsonArray:
    case Column.Int64Array:
      return Array.isArray(value) ? value.map((v) => toValue(v, elementOf(type))) : value;
    default:
      return value;
  }
}

function elementOf(arrayType: PrismaColumnType): PrismaColumnType {
  for (const [element, array] of Object.entries(arrayOf))
    if (array === arrayType) return Number(element) as PrismaColumnType;
  return Column.Text;
}

function toResultSet(result: QueryResult<unknown> & { insertId?: unknown }): PrismaSqlResultSet {
  const rows = result.rows as Record<string, unknown>[];
  const columnNames = rows.length > 0 ? Object.keys(rows[0] as object) : [];
  const columnTypes = columnNames.map((name): PrismaColumnType => {
    const row = rows.find((r) => r[name] !== null && r[name] !== undefined);
    return row === undefined ? Column.UnknownNumber : typeOf(row[name]);
  });
  const set: PrismaSqlResultSet = {
    columnNames,
    columnTypes,
    rows: rows.map((row) =>
      columnNames.map((name, i) => toValue(row[name], columnTypes[i] as PrismaColumnType)),
    ),
  };
  const insertId = result.insertId;
  if (
    (typeof insertId === 'number' || typeof insertId === 'string' || typeof insertId === 'bigint') &&
    String(insertId) !== '0'
  ) {
    set.lastInsertId = String(insertId);
  }
  return set;
}

function toArgs(db: Database, query: PrismaSqlQuery): unknown[] {
  return query.args.map((arg, i) => toArg(db, arg, query.argTypes[i]));
}

function toArg(db: Database, arg: unknown, type: PrismaArgType | undefined): unknown {
  if (arg === null || arg === undefined || type === undefined) return arg ?? null;
  if (Array.isArray(arg) && type.arity === 'list') return arg.map((v) => toArg(db, v, type));
  if (typeof arg === 'string' && type.scalarType === 'datetime' && db.dialect.name !== 'sqlite')
    return new Date(arg);
  if (typeof arg === 'string' && type.scalarType === 'bytes') return Buffer.from(arg, 'base64');
  // Prisma sends integers as strings at times (LIMIT, OFFSET, BigInt): MySQL's client-side binding
  // would quote them, and SQLite would compare them as text.
  if (typeof arg === 'string' && db.dialect.name !== 'postgres') {
    if (type.scalarType === 'int') return Number(arg);
    if (type.scalarType === 'bigint') return BigInt(arg);
  }
  return arg;
}

/** Prisma turns adapter errors of this shape into its known request errors (P2002, P2003, P2011). */
class DriverAdapterError extends Error {
  override name = 'DriverAdapterError';
  constructor(
    override readonly cause: Record<string, unknown>,
    readonly error: unknown,
  ) {
    super(String(cause.originalMessage ?? cause.kind));
  }
}

function mapError(error: unknown): unknown {
  if (error instanceof TxScopeError || error === null || typeof error !== 'object') return error;
  const e = error as {
    code?: unknown;
    errno?: unknown;
    message?: unknown;
    constraint?: unknown;
    detail?: unknown;
  };
  const original = {
    originalCode: String(e.code ?? e.errno ?? ''),
    originalMessage: String(e.message ?? ''),
  };
  const constraint = typeof e.constraint === 'string' ? { index: e.constraint } : undefined;
  const fields =
    typeof e.detail === 'string' ? e.detail.match(/Key \(([^)]+)\)/)?.[1]?.split(', ') : undefined;
  const on = fields !== undefined ? { fields } : constraint;
  // PostgreSQL SQLSTATE, MySQL errno, SQLite extended code name.
  switch (e.code) {
    case '23505':
    case 'ER_DUP_ENTRY':
    case 'SQLITE_CONSTRAINT_UNIQUE':
    case 'SQLITE_CONSTRAINT_PRIMARYKEY':
      return new DriverAdapterError(
        { kind: 'UniqueConstraintViolation', constraint: on, ...original },
        error,
      );
    case '23503':
    case 'ER_NO_REFERENCED_ROW_2':
    case 'SQLITE_CONSTRAINT_FOREIGNKEY':
      return new DriverAdapterError(
        { kind: 'ForeignKeyConstraintViolation', constraint: on, ...original },
        error,
      );
    case '23502':
    case 'ER_BAD_NULL_ERROR':
    case 'SQLITE_CONSTRAINT_NOTNULL':
      return new DriverAdapterError({ kind: 'NullConstraintViolation', constraint: on, ...original }, error);
    default:
      // Everything else reaches the caller unchanged, as txscope's own errors do.
      return error;
  }
}

class Queryable implements PrismaQueryable {
  readonly adapterName = 'txscope';
  readonly provider: PrismaProvider;

  constructor(
    readonly db: Database,
    readonly run: Runner,
  ) {
    this.provider = db.dialect.name;
  }

  async #query(query: PrismaSqlQuery): Promise<QueryResult<unknown> & { insertId?: unknown }> {
    try {
      return await this.run(() => this.db.query(query.sql, toArgs(this.db, query)));
    } catch (error) {
      throw mapError(error);
    }
  }

  async queryRaw(query: PrismaSqlQuery): Promise<PrismaSqlResultSet> {
    return toResultSet(await this.#query(query));
  }

  async executeRaw(query: PrismaSqlQuery): Promise<number> {
    return (await this.#query(query)).rowCount;
  }
}

const rollbackSignal = Symbol('txscope/prisma rollback');

/**
 * A Prisma transaction is opened and closed by separate calls: the txscope transaction stays
 * open between them, and its statements run in the async context captured inside it.
 */
class Transaction extends Queryable implements PrismaTransaction {
  // txscope sends BEGIN, COMMIT and ROLLBACK; Prisma must not.
  readonly options = { usePhantomQuery: true };

  private constructor(
    db: Database,
    run: Runner,
    readonly done: Promise<void>,
    readonly finish: (outcome: 'commit' | 'rollback') => void,
  ) {
    super(db, run);
  }

  static start(db: Database, options: TransactionOptions): Promise<Transaction> {
    return new Promise<Transaction>((resolve, reject) => {
      let started: Transaction | undefined;
      const done = db.transaction(
        () =>
          new Promise<void>((commit, rollback) => {
            started = new Transaction(db, AsyncLocalStorage.snapshot(), done, (outcome) => {
              if (outcome === 'commit') commit();
              else rollback(rollbackSignal);
            });
            resolve(started);
          }),
        options,
      );
      // Refused on entry (propagation, options): the body never ran.
      done.catch((error: unknown) => {
        if (started === undefined) reject(error);
      });
    });
  }

  async #end(outcome: 'commit' | 'rollback'): Promise<void> {
    this.finish(outcome);
    try {
      await this.done;
    } catch (error) {
      if (error !== rollbackSignal) throw mapError(error);
    }
  }

  commit(): Promise<void> {
    return this.#end('commit');
  }

  rollback(): Promise<void> {
    return this.#end('rollback');
  }

  async #statement(text: string): Promise<void> {
    await this.run(() => this.db.query(text));
  }

  createSavepoint(name: string): Promise<void> {
    return this.#statement(this.db.dialect.savepoint(this.db.dialect.quoteIdentifier(name)));
  }

  rollbackToSavepoint(name: string): Promise<void> {
    return this.#statement(this.db.dialect.rollbackToSavepoint(this.db.dialect.quoteIdentifier(name)));
  }

  releaseSavepoint(name: string): Promise<void> {
    return this.#statement(this.db.dialect.releaseSavepoint(this.db.dialect.quoteIdentifier(name)));
  }
}

const prismaIsolation: Record<string, TransactionOptions['isolation']> = {
  'READ UNCOMMITTED': 'read uncommitted',
  'READ COMMITTED': 'read committed',
  'REPEATABLE READ': 'repeatable read',
  SERIALIZABLE: 'serializable',
};

class Adapter extends Queryable implements PrismaDriverAdapter {
  constructor(db: Database) {
    super(db, ambient);
  }

  async executeScript(script: string): Promise<void> {
    // Scripts (migrations) are one unit: a txscope transaction, joined if one is active.
    await this.db.transaction(async () => {
      for (const statement of script.split(';')) {
        if (statement.trim() !== '') await this.db.query(statement);
      }
    });
  }

  startTransaction(isolationLevel?: string): Promise<PrismaTransaction> {
    const options: TransactionOptions = { propagation: 'nested' };
    if (isolationLevel !== undefined) {
      const isolation = prismaIsolation[isolationLevel.toUpperCase()];
      if (isolation === undefined) {
        return Promise.reject(
          new TxScopeError(
            ErrorCode.INVALID_OPTION,
            `txscope/prisma: isolation level ${isolationLevel} is not supported here; use ReadCommitted, ` +
              'RepeatableRead or Serializable',
          ),
        );
      }
      options.isolation = isolation;
    }
    return Transaction.start(this.db, options);
  }

  getConnectionInfo(): { supportsRelationJoins: boolean } {
    return { supportsRelationJoins: this.db.dialect.name !== 'sqlite' };
  }

  // The txscope database is shared: db.close() closes the pool, not prisma.$disconnect().
  async dispose(): Promise<void> {}
}

/**
 * A Prisma driver adapter over a txscope database: a `PrismaClient` made with it once, at
 * module level, runs every query through txscope — inside the ambient transaction
 * (`@Transactional()`, `db.transaction`) on its connection, outside it in autocommit.
 * `prisma.$transaction(fn)` is a txscope transaction, a savepoint where one is already active.
 * Needs Prisma 6.16+ with the query compiler (`prisma-client` generator, no Rust engine).
 *
 * @example
 * ```ts
 * import { PrismaClient } from './generated/prisma/client.js';
 * import { adapter } from 'txscope/prisma';
 * export const prisma = new PrismaClient({ adapter: adapter(db) });
 *
 * export const createUser = (name: string) => prisma.user.create({ data: { name } });
 * ```
 */
export function adapter(db: Database): PrismaDriverAdapterFactory {
  if (db === null || typeof db !== 'object' || typeof db.query !== 'function' || db.dialect === undefined) {
    throw new TxScopeError(
      ErrorCode.INVALID_OPTION,
      'txscope/prisma: adapter(db) takes a txscope database: new PrismaClient({ adapter: adapter(db) })',
    );
  }
  return {
    provider: db.dialect.name,
    adapterName: 'txscope',
    connect: async () => new Adapter(db),
  };
}
