/**
 * A controlled transaction: begun by one call and ended by another (Kysely's
 * `startTransaction()`, Prisma's adapter `startTransaction()`), where txscope's own boundaries
 * take a callback. The boundary stays open between the calls, and statements sent through
 * `run` execute in the async context captured inside it.
 */
import type { Database } from '../core/database.js';
import type { TransactionOptions } from '../options.js';
import type { Runner } from './shared.js';

export interface ControlledTransaction {
  /** Runs `fn` inside the transaction, wherever it is called from. */
  readonly run: Runner;
  /** Ends the transaction: resolves once COMMIT or ROLLBACK is done, rejects as the transaction would. */
  end(outcome: 'commit' | 'rollback'): Promise<void>;
}

/** What the boundary's body rejects with when the caller asked for ROLLBACK: it is not an error. */
const rollbackRequested = Symbol('txscope rollback requested');

/**
 * Begins a controlled transaction. Rejects, with nothing begun, when the boundary refuses to
 * open (propagation, options).
 */
export function beginControlled(db: Database, options: TransactionOptions): Promise<ControlledTransaction> {
  return new Promise<ControlledTransaction>((resolve, reject) => {
    let started = false;
    const done = db.transaction(
      () =>
        new Promise<void>((commit, rollback) => {
          started = true;
          const run = db.bind(<R>(fn: () => R): R => fn()) as Runner;
          resolve({
            run,
            async end(outcome) {
              if (outcome === 'commit') commit();
              else rollback(rollbackRequested);
              try {
                await done;
              } catch (error) {
                if (error !== rollbackRequested) throw error;
              }
            },
          });
        }),
      options,
    );
    done.catch((error: unknown) => {
      if (!started) reject(error);
    });
  });
}
