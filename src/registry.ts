import { ErrorCode, TxScopeError } from './errors.js';

/** What `@Transactional()` needs of the default database. */
export interface DefaultDatabase {
  readonly name: string;
}

let current: DefaultDatabase | null = null;

/** The first database created is the default until one created with `default: true` claims it. */
export function claimDefault(db: DefaultDatabase, explicit: boolean): void {
  if (explicit || current === null) current = db;
}

export function releaseDefault(db: DefaultDatabase): void {
  if (current === db) current = null;
}

/** The database `@Transactional()` uses, looked up at call time. */
export function defaultDatabase<T extends DefaultDatabase>(): T {
  if (current === null) {
    throw new TxScopeError(
      ErrorCode.NO_DEFAULT_DATABASE,
      '@Transactional() found no database: create one with createDatabase({ driver }) before calling the method ' +
        '(or pass { default: true } to the one it should use)',
    );
  }
  return current as T;
}
