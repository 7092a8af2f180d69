/**
 * Knex's transaction over txscope. Knex keeps its own `Transaction` (the `trx` object, its
 * commit/rollback/savepoint API, `executionPromise`, the order of sibling savepoints); where it
 * would take a connection and send BEGIN, a txscope transaction begins instead (a savepoint inside
 * an active one), and its COMMIT and ROLLBACK are that transaction's end.
 */
import { errors } from '../../errors.js';
import type { TransactionOptions } from '../../options.js';
import { beginControlled, type ControlledTransaction } from '../controlled.js';
import { asHandle, TxScopeKnexConnection } from './connection.js';

/** The part of Knex's client a transaction uses. */
export interface KnexClientCore {
  acquireConnection(): Promise<unknown>;
}

/** The part of Knex's `Transaction` (lib/execution/transaction.js) txscope builds on. */
export interface KnexTransactionCore {
  readonly client: KnexClientCore;
  readonly txid: string;
  readonly isolationLevel?: string | undefined;
  readonly readOnly?: boolean | undefined;
  readonly doNotRejectOnRollback?: boolean | undefined;
  _completed: boolean;
  _resolver(value?: unknown): void;
  _rejecter(error: unknown): void;
}

export type KnexTransactionClass = new (
  client: unknown,
  container: unknown,
  config: unknown,
  outerTx: unknown,
) => KnexTransactionCore;

/** Knex's transaction config, as far as the connection goes. */
interface TransactionConfig {
  connection?: unknown;
}

/** Knex's isolationLevel and readOnly, as txscope options; `nested`: a savepoint inside a transaction. */
function optionsOf(trx: KnexTransactionCore): TransactionOptions {
  const options: TransactionOptions = { propagation: 'nested' };
  const level = trx.isolationLevel;
  if (level !== undefined) {
    if (level === 'snapshot') {
      throw errors.unsupported(
        'txscope/knex',
        'isolation level "snapshot" (SQL Server only)',
        'use "serializable" or "repeatable read"',
      );
    }
    options.isolation = level as TransactionOptions['isolation'];
  }
  if (typeof trx.readOnly === 'boolean') options.readOnly = trx.readOnly;
  return options;
}

/** Knex's `Transaction`, whose connection is a txscope transaction. */
export function txscopeTransactionClass(Base: KnexTransactionClass): KnexTransactionClass {
  return class TxScopeKnexTransaction extends Base {
    #controlled: ControlledTransaction | null = null;

    /**
     * Where Knex acquires a connection for the transaction and runs `cb` (BEGIN, the callback,
     * COMMIT): a txscope transaction begins, in the context of the connection Knex would have used
     * (the caller's, or the outer `trx`'s), and `cb` runs inside it, so that module-level queries
     * in the callback join it too.
     */
    async acquireConnection(
      config: TransactionConfig | undefined,
      cb: (connection: TxScopeKnexConnection) => Promise<unknown>,
    ): Promise<unknown> {
      const given = config?.connection;
      const outer = asHandle(given ?? (await this.client.acquireConnection()));
      const options = optionsOf(this);
      const controlled = await outer.run(() => beginControlled(outer.db, options));
      this.#controlled = controlled;
      return controlled.run(() => cb(given === undefined ? this.#connection(controlled, outer) : outer));
    }

    /**
     * The trx's own handle, bound to its transaction. Given `{ connection }` (Knex's schema runner
     * does that for SQLite's table rebuilds), Knex insists on that very connection: it is used as
     * is. The module-level handle routes by the caller's context, inside the callback the new
     * transaction's; a trx's handle keeps to the trx's transaction, which then holds the work.
     */
    #connection(controlled: ControlledTransaction, outer: TxScopeKnexConnection): TxScopeKnexConnection {
      const connection = new TxScopeKnexConnection(outer.db, controlled.run, controlled);
      connection.__knexTxId = this.txid;
      return connection;
    }

    // txscope sends BEGIN (or SAVEPOINT) itself, lazily, before the transaction's first statement.
    begin(): Promise<void> {
      return Promise.resolve();
    }

    savepoint(): Promise<void> {
      return Promise.resolve();
    }

    commit(_connection: unknown, value?: unknown): Promise<void> {
      return this.#end('commit', value);
    }

    release(_connection: unknown, value?: unknown): Promise<void> {
      return this.#end('commit', value);
    }

    rollback(_connection: unknown, error?: unknown): Promise<void> {
      return this.#end('rollback', error);
    }

    rollbackTo(_connection: unknown, error?: unknown): Promise<void> {
      return this.#end('rollback', error);
    }

    /**
     * Ends the txscope transaction, then settles Knex's `executionPromise` as Knex does: with the
     * committed value; for a rollback, with the error given, or nothing (`doNotRejectOnRollback`).
     * A commit that did not happen rejects `commit()` as well. A second end does nothing, as in Knex.
     */
    #end(outcome: 'commit' | 'rollback', value: unknown): Promise<void> {
      const controlled = this.#controlled;
      if (controlled === null || this._completed) return Promise.resolve();
      this._completed = true;
      return controlled.end(outcome).then(
        () => {
          if (outcome === 'commit') this._resolver(value);
          else if (value === undefined && this.doNotRejectOnRollback) this._resolver();
          else this._rejecter(value ?? new Error(`Transaction rejected with non-error: ${value}`));
        },
        (error: unknown) => {
          // A failing rollback never masks the error that asked for it.
          this._rejecter(outcome === 'rollback' && value !== undefined ? value : error);
          // Knex's rollback() never rejects (its callback form does not handle it); commit() does here.
          if (outcome === 'commit') throw error;
        },
      );
    }
  };
}
