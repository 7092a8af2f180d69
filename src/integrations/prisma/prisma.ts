/**
 * `txscope/prisma`: a Prisma driver adapter over a txscope database. A `PrismaClient` made with
 * it once, at module level, runs every query through txscope.
 */
import type { Database } from '../../core/database.js';
import { errors } from '../../errors.js';
import type { TransactionOptions } from '../../options.js';
import { beginControlled, type ControlledTransaction } from '../controlled.js';
import { ambient, assertDatabase, type Runner, savepointStatement } from '../shared.js';
import {
  mapError,
  type PrismaDriverAdapter,
  type PrismaDriverAdapterFactory,
  type PrismaProvider,
  type PrismaQueryable,
  type PrismaSqlQuery,
  type PrismaSqlResultSet,
  type PrismaTransaction,
  toArgs,
  toResultSet,
} from './values.js';

class Queryable implements PrismaQueryable {
  readonly adapterName = 'txscope';
  readonly provider: PrismaProvider;

  constructor(
    readonly db: Database,
    readonly run: Runner,
  ) {
    this.provider = db.dialect.name;
  }

  async #query(
    query: PrismaSqlQuery,
  ): Promise<Awaited<ReturnType<Database['query']>> & { insertId?: unknown }> {
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

/**
 * A Prisma transaction is opened and closed by separate calls: a controlled txscope transaction,
 * whose statements run in the async context captured inside it.
 */
class Transaction extends Queryable implements PrismaTransaction {
  // txscope sends BEGIN, COMMIT and ROLLBACK; Prisma must not.
  readonly options = { usePhantomQuery: true };

  constructor(
    db: Database,
    readonly controlled: ControlledTransaction,
  ) {
    super(db, controlled.run);
  }

  async #end(outcome: 'commit' | 'rollback'): Promise<void> {
    try {
      await this.controlled.end(outcome);
    } catch (error) {
      throw mapError(error);
    }
  }

  commit(): Promise<void> {
    return this.#end('commit');
  }

  rollback(): Promise<void> {
    return this.#end('rollback');
  }

  async #savepoint(
    kind: 'savepoint' | 'releaseSavepoint' | 'rollbackToSavepoint',
    name: string,
  ): Promise<void> {
    const text = savepointStatement(this.db, kind, name);
    await this.run(() => this.db.query(text));
  }

  createSavepoint(name: string): Promise<void> {
    return this.#savepoint('savepoint', name);
  }

  rollbackToSavepoint(name: string): Promise<void> {
    return this.#savepoint('rollbackToSavepoint', name);
  }

  releaseSavepoint(name: string): Promise<void> {
    return this.#savepoint('releaseSavepoint', name);
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
          errors.unsupported(
            'txscope/prisma',
            `isolation level ${isolationLevel}`,
            'use ReadUncommitted, ReadCommitted, RepeatableRead or Serializable',
          ),
        );
      }
      options.isolation = isolation;
    }
    return beginControlled(this.db, options).then((controlled) => new Transaction(this.db, controlled));
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
  assertDatabase(db, 'adapter(db) of txscope/prisma');
  return {
    provider: db.dialect.name,
    adapterName: 'txscope',
    connect: async () => new Adapter(db),
  };
}
