/**
 * TypeORM's EntityManager whose `transaction(fn)` is a txscope transaction (a savepoint inside
 * the active one), with `fn` run inside it: module-level repositories join it, not only the
 * manager `fn` receives.
 */
import { EntityManager, QueryRunnerProviderAlreadyReleasedError } from 'typeorm';
import type { IsolationLevel as TypeormIsolationLevel } from 'typeorm/driver/types/IsolationLevel.js';
import { errors } from '../../errors.js';
import { isTxScopeRunner, type RunnerInternals, type TxScopeRunner } from './runner.js';

type Work<T> = (manager: EntityManager) => Promise<T>;

/** The data source of a manager: `dataSource` in TypeORM 1.x, `connection` in 0.3. */
function dataSourceOf(manager: EntityManager): { createQueryRunner(): unknown } {
  const m = manager as unknown as { dataSource?: unknown; connection?: unknown };
  return (m.dataSource ?? m.connection) as { createQueryRunner(): unknown };
}

export class TxScopeEntityManager extends EntityManager {
  override transaction<T>(runInTransaction: Work<T>): Promise<T>;
  override transaction<T>(isolationLevel: TypeormIsolationLevel, runInTransaction: Work<T>): Promise<T>;
  override async transaction<T>(
    isolationOrWork: TypeormIsolationLevel | Work<T>,
    maybeWork?: Work<T>,
  ): Promise<T> {
    const isolation = typeof isolationOrWork === 'string' ? isolationOrWork : undefined;
    const work = typeof isolationOrWork === 'function' ? isolationOrWork : maybeWork;
    if (typeof work !== 'function') {
      throw errors.invalidArgument('manager.transaction(isolationLevel?, fn)', 'a callback');
    }
    const parent = this.queryRunner;
    if (parent?.isReleased) throw new QueryRunnerProviderAlreadyReleasedError();
    // A runner of its own, begun where the parent's statements run: two transactions begun on one
    // manager at once (Promise.all) never share a stack of savepoints.
    const runner = dataSourceOf(this).createQueryRunner() as RunnerInternals &
      TxScopeRunner & { manager: EntityManager };
    if (isTxScopeRunner(parent)) runner.bindTo(parent.txscopeRun);
    try {
      await runner.startTransaction(isolation);
      const result = await runner.txscopeRun(() => work(runner.manager));
      await runner.commitTransaction();
      return result;
    } catch (error) {
      try {
        await runner.rollbackTransaction();
      } catch {
        // Already ended (a failed COMMIT rolled it back): the original error is the one to report.
      }
      throw error;
    } finally {
      await runner.release();
    }
  }
}
