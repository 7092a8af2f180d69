/**
 * `txscope/knex`: a real Knex instance whose queries run through txscope. Its transactions are
 * txscope transactions (a savepoint where one is active), and its connections txscope's.
 */
import knex, { type Knex } from 'knex';
import type { Database } from '../../core/database.js';
import { errors } from '../../errors.js';
import { assertDatabase } from '../shared.js';
import { databaseKey, knexClientFor } from './client.js';

/** Options of {@link createKnex}: Knex's own, less what picks a driver or makes connections. */
export type CreateKnexConfig = Omit<
  Knex.Config,
  'client' | 'dialect' | 'connection' | 'pool' | 'acquireConnectionTimeout' | 'searchPath'
>;

/** Knex options that would give it a driver or connections of its own: txscope's driver has them. */
const refused = ['client', 'dialect', 'connection', 'pool', 'acquireConnectionTimeout', 'searchPath'];

/**
 * A real `Knex` over a txscope database: its query builder, schema builder, `raw` and migrations
 * run through txscope, inside the ambient transaction on its connection, outside it in autocommit.
 * `knex.transaction(fn)` is a txscope transaction (a savepoint where one is already active), `fn`
 * runs inside it, and `trx` keeps to it wherever it is passed; `knex.transaction()` without a
 * callback returns a controlled `trx` (`commit()`, `rollback()`). Knex's dialect is the driver's.
 * `knex.destroy()` closes nothing: the pool is the database's (`db.close()`).
 *
 * @example
 * ```ts
 * import { createKnex } from 'txscope/knex';
 * export const knex = createKnex(db);
 *
 * export const findUser = (id: number) => knex('users').where({ id }).first();
 * ```
 */
export function createKnex(db: Database, config: CreateKnexConfig = {}): Knex {
  assertDatabase(db, 'createKnex(db)');
  if (config === null || typeof config !== 'object') {
    throw errors.invalidArgument('createKnex(db, config)', 'Knex options (without client or connection)');
  }
  for (const key of refused) {
    if ((config as Record<string, unknown>)[key] !== undefined) {
      throw errors.unsupported(
        'txscope/knex',
        `config.${key}`,
        'the txscope database owns the driver and its connections: configure them on its driver',
      );
    }
  }
  return knex({
    ...config,
    ...migrationsFor(db, config),
    client: knexClientFor(db.dialect.name),
    [databaseKey]: db,
  } as unknown as Knex.Config);
}

/**
 * MySQL commits implicitly on DDL, which txscope refuses inside a transaction (the work before it
 * would be committed behind the transaction's back). Knex migrations there run each in autocommit
 * unless the config says otherwise, as their DDL does anyway; the migration lock still takes a
 * transaction of its own.
 */
function migrationsFor(db: Database, config: CreateKnexConfig): Pick<Knex.Config, 'migrations'> {
  if (db.dialect.name !== 'mysql' || config.migrations?.disableTransactions !== undefined) return {};
  return { migrations: { ...config.migrations, disableTransactions: true } };
}
