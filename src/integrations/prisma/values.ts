/**
 * Prisma's side of the adapter contract, declared by shape (Prisma checks adapters structurally,
 * so nothing of Prisma is imported), and the conversions between its values and txscope's.
 */
import type { Database } from '../../core/database.js';
import type { QueryResult } from '../../driver.js';
import { TxScopeError } from '../../errors.js';

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

export function toResultSet(result: QueryResult<unknown> & { insertId?: unknown }): PrismaSqlResultSet {
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

export function toArgs(db: Database, query: PrismaSqlQuery): unknown[] {
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

export function mapError(error: unknown): unknown {
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
