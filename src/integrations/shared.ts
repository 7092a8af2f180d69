/** What every query-builder integration needs of a txscope database, written once. */
import type { Database } from '../core/database.js';
import { errors } from '../errors.js';

/** Runs `fn` in a captured async context (a transaction's, a pin's), or in the caller's. */
export type Runner = <R>(fn: () => R) => R;

/** Runs `fn` where it is called: statements join whatever the caller's context holds. */
export const ambient: Runner = (fn) => fn();

/** Throws `ERR_INVALID_OPTION` unless `db` is a txscope database; `call` shows the right call. */
export function assertDatabase(db: unknown, call: string): asserts db is Database {
  const candidate = db as Partial<Database> | null;
  if (
    candidate === null ||
    typeof candidate !== 'object' ||
    typeof candidate.query !== 'function' ||
    typeof candidate.transaction !== 'function' ||
    candidate.dialect === undefined
  ) {
    throw errors.invalidArgument(call, 'a txscope database (from createDatabase() in txscope) first');
  }
}

/** A savepoint statement of the database's dialect, the name quoted (query builders choose the names). */
export function savepointStatement(
  db: Database,
  kind: 'savepoint' | 'releaseSavepoint' | 'rollbackToSavepoint',
  name: string,
): string {
  return db.dialect[kind](db.dialect.quoteIdentifier(name));
}

/** An insert id as query builders report it: none when the statement generated none (0). */
export function insertIdOf(value: unknown): bigint | undefined {
  if (typeof value !== 'number' && typeof value !== 'string' && typeof value !== 'bigint') return undefined;
  if (String(value) === '0') return undefined;
  return BigInt(value);
}
