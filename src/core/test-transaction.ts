/**
 * The test transaction of `txscope/testing`: one connection in one transaction, always rolled
 * back, that every statement of the database in the process joins while it is open. It is a pin
 * whose connection has BEGIN sent: statements outside any application transaction run in it in
 * issue order, and an application transaction takes its turn on it as a savepoint.
 */
import type { DriverResult } from '../driver.js';
import { errors } from '../errors.js';
import { noLeases } from './context.js';
import type { Engine } from './engine.js';
import { Pin } from './pin.js';
import type { Statement } from './runner.js';
import { Transaction } from './transaction.js';
import type { TransactionRole } from './transaction-state.js';

const testRole: TransactionRole = Object.freeze({ kind: 'test' });

export class TestPin extends Pin {
  readonly transaction: Transaction;
  /** The application transaction whose turn it is; boundaries inside its own work nest in it. */
  holder: Transaction | null = null;
  readonly #role: TransactionRole;

  constructor(engine: Engine) {
    super(engine, { session: null, held: noLeases, ended: errors.testTransactionEnded });
    this.transaction = new Transaction(engine, {
      role: testRole,
      lease: this.lease,
      session: null,
      isolation: undefined,
      readOnly: false,
      ownsLease: true,
      racing: false,
      timeoutMs: undefined,
    });
    this.#role = Object.freeze({ kind: 'savepoint', enclosing: this.transaction });
  }

  override get testing(): boolean {
    return true;
  }

  override get role(): TransactionRole {
    return this.#role;
  }

  /** An autocommit statement: it runs in the test transaction, BEGIN sent with the first. */
  override query(statement: Statement): Promise<DriverResult> {
    if (this.closed) return Promise.reject(errors.testTransactionEnded());
    return this.transaction.query(this.transaction.root, statement);
  }

  override refusal(): Error | null {
    if (this.closed) return errors.testTransactionEnded();
    return super.refusal();
  }

  /**
   * Rolls the test transaction back, whatever is still running in it: the statement on the server
   * is cancelled, and anything issued later rejects `ERR_TRANSACTION_CLOSED`.
   */
  override async close(): Promise<void> {
    if (!this.markClosed()) return;
    if (this.engine.test === this) this.engine.test = null;
    this.transaction.fail(errors.testTransactionEnded());
    await this.transaction.done;
  }
}

/** Opens the database's test transaction; refused while another one is open. */
export function openTestTransaction(engine: Engine): TestPin {
  const closed = engine.closedError();
  if (closed !== null) throw closed;
  if (engine.test !== null) throw errors.testTransactionOpen(engine.name);
  const pin = new TestPin(engine);
  engine.test = pin;
  return pin;
}
