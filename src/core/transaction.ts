/**
 * One physical transaction: one connection, taken with its first statement; BEGIN sent with
 * that statement (in the same network write where the driver can); COMMIT or ROLLBACK when its
 * root frame ends, then the connection goes back before any after-completion callback runs.
 */
import type { DriverConnection, DriverResult, IsolationLevel } from '../driver.js';
import { errors, type TxScopeError } from '../errors.js';
import { type BeginningTransaction, sendBegin } from './begin.js';
import { type Deferred, deferred } from './deferred.js';
import type { Engine } from './engine.js';
import { TransactionFrame } from './frame.js';
import type { CompletionStatus } from './hooks.js';
import type { Lease } from './lease.js';
import { asError, beginTime, type RollbackReason, reasonOf, reportBegin, reportOutcome } from './outcome.js';
import type { Statement } from './runner.js';
import { openSavepoint } from './savepoint.js';
import { openAsSavepoint, savepointEnded } from './savepoint-transaction.js';
import type { ScopeTransaction, Session } from './scope.js';
import {
  active,
  beginning,
  committing,
  isOpen,
  pending,
  type TransactionRole,
  type TransactionSetup,
  type TransactionState,
} from './transaction-state.js';

const noValues: readonly unknown[] = Object.freeze([]);
let nextTransactionId = 0;
const neverRetried = (): boolean => false;
/** The database rolled back instead of committing (PostgreSQL's ROLLBACK answer to COMMIT). */
const rollbackOnly = (): never => {
  throw errors.rollbackOnly('database_rolled_back');
};

export class Transaction implements BeginningTransaction, ScopeTransaction {
  readonly id = ++nextTransactionId;
  readonly root: TransactionFrame;
  readonly lease: Lease;
  readonly session: Session | null;
  readonly isolation: IsolationLevel | undefined;
  readonly ownsLease: boolean;
  readonly role: TransactionRole;
  /** A savepoint role's savepoint, named once SAVEPOINT has succeeded. */
  savepointName: string | null = null;
  /** A savepoint role's own statements in flight on the shared connection: only those are cancelled. */
  #running = 0;
  /** Set on attempts of a `retry` transaction: true when `error` will be retried. */
  willRetry: (error: unknown) => boolean = neverRetried;
  #state: TransactionState = pending;
  /** When BEGIN was issued (performance.now(), or 0 untimed), or null: one that never began sends nothing. */
  #beganAt: number | null = null;
  #savepoints = 0;
  /** A cancel request in flight: nothing more is sent on the connection until it has landed. */
  #cancelling: Promise<void> | null = null;
  /** Rejects the work of frames that race the transaction's failure (see {@link race}). */
  #racers: ((error: Error) => void)[] | null = null;
  #done: Deferred<void> | null = null;
  #ending: Promise<void> | null = null;
  #deadline: NodeJS.Timeout | undefined;
  /** Whether the root frame's work is raced against the transaction's failure (TransactionSetup.racing). */
  readonly racing: boolean;

  constructor(
    readonly engine: Engine,
    setup: TransactionSetup,
  ) {
    this.lease = setup.lease;
    this.session = setup.session;
    this.isolation = setup.isolation;
    this.ownsLease = setup.ownsLease;
    this.role = setup.role;
    this.racing = setup.racing;
    if (setup.role.kind !== 'savepoint') this.lease.transactionId = this.id;
    if (setup.ownsLease) {
      this.lease.readOnly = setup.readOnly;
      this.lease.session = setup.session;
    }
    this.root = new TransactionFrame(this, null, { kind: 'root', readOnly: setup.readOnly });
    engine.activity.activeTransactions++;
    const ms = setup.timeoutMs;
    if (ms !== undefined) this.#deadline = setTimeout(() => this.fail(errors.transactionTimeout(ms)), ms);
  }

  get transactionId(): number {
    return this.id;
  }

  get readOnly(): boolean {
    return this.root.readOnly;
  }

  /** True once the transaction takes no more statements. */
  get isOver(): boolean {
    return !isOpen(this.#state.phase);
  }

  /** The error that ended the transaction early, if one did. */
  get failure(): Error | null {
    const state = this.#state;
    if (state.phase === 'failed') return state.error;
    if (state.phase === 'rolling_back' || state.phase === 'ended') return state.failure;
    return null;
  }

  /** Resolves once the transaction has ended and its connection is back. */
  get done(): Promise<void> {
    if (this.#state.phase === 'ended') return Promise.resolve();
    this.#done ??= deferred<void>();
    return this.#done.promise;
  }

  // ---- statements ----

  /** Runs a statement inside `frame`, after everything issued before it. */
  query(frame: TransactionFrame, statement: Statement): Promise<DriverResult> {
    const phase = this.#state.phase;
    if (!isOpen(phase)) return Promise.reject(this.failure ?? errors.transactionClosed());
    if (frame.isClosed) return Promise.reject(errors.transactionClosed());
    const unit = frame.unit;
    if (unit.kind === 'savepoint' && unit.savepoint.kind === 'unsent') openSavepoint(unit);
    else if (phase === 'pending') return this.#begin(statement);
    if (this.role.kind === 'savepoint') return this.#counted(this.lease.send(this, statement));
    return this.lease.send(this, statement);
  }

  #counted(sent: Promise<DriverResult>): Promise<DriverResult> {
    this.#running++;
    const settle = (): void => {
      this.#running--;
    };
    sent.then(settle, settle);
    return sent;
  }

  refusal(): Error | null {
    const state = this.#state;
    return state.phase === 'failed' ? state.error : null;
  }

  accept(result: DriverResult, statement: Statement, connection: DriverConnection): DriverResult {
    // The server ended the transaction under us (MySQL commits implicitly on DDL; a hand-written
    // COMMIT): what follows must not run in autocommit, so the transaction fails loudly.
    if (statement.kind === 'statement' && connection.status() === 'idle') {
      const ended = errors.endedByServer(statement.text);
      this.fail(ended);
      throw ended;
    }
    return result;
  }

  reject(error: unknown, statement: Statement): never {
    if (statement.kind === 'begin' || statement.kind === 'commit') throw error;
    if (this.engine.isConnectionLost(error)) {
      if (statement.kind === 'control') {
        this.lease.lost ??= error;
        throw error;
      }
      throw this.#lost(error);
    }
    if (statement.kind === 'control') throw error;
    const failure = this.failure;
    if (failure !== null) throw failure;
    // The driver error goes to the caller unchanged; when it ended the transaction (a deadlock, a
    // lock-wait timeout), later statements reject with it too.
    // A test transaction outlives its statements' errors, as autocommit would.
    const kind = this.engine.classify(error);
    if ((kind === 'retryable' || kind === 'transaction_aborted') && this.role.kind !== 'test') {
      this.fail(asError(error));
    }
    throw error;
  }

  #begin(first: Statement): Promise<DriverResult> {
    this.#state = beginning;
    this.#beganAt = beginTime();
    this.session?.began(this);
    reportBegin(this);
    const role = this.role;
    if (role.kind === 'savepoint') return this.#counted(openAsSavepoint(this, role.enclosing, first));
    return this.lease.run(
      (connection) => sendBegin(this, connection, first),
      (error) => this.failWith(error),
    );
  }

  beginStatements(): readonly string[] {
    return this.engine.beginStatements(this.isolation, this.readOnly);
  }

  began(): void {
    if (this.#state.phase === 'beginning') this.#state = active;
  }

  mayReplaceConnection(error: unknown, replaced: number): boolean {
    return (
      this.ownsLease &&
      this.refusal() === null &&
      this.engine.isConnectionLost(error) &&
      replaced < this.engine.driver.counts().max
    );
  }

  /**
   * The transaction cannot go on after `error` (BEGIN failed, or a SAVEPOINT did, so its state is
   * unknown): fails it, and returns what to reject with (ERR_CONNECTION_LOST for a lost connection).
   */
  failWith(error: unknown): unknown {
    if (this.engine.isConnectionLost(error)) return this.#lost(error);
    this.fail(asError(error));
    return error;
  }

  #lost(error: unknown): TxScopeError {
    const lost = errors.connectionLost('transaction', error);
    this.lease.lost ??= error;
    this.fail(lost);
    return lost;
  }

  /**
   * Sends transaction control the caller did not write (SAVEPOINT, RELEASE, ROLLBACK TO); when
   * nothing was sent yet, BEGIN goes with it.
   */
  sendControl(text: string): Promise<DriverResult> {
    const statement: Statement = { text, values: noValues, kind: 'control' };
    if (this.#state.phase === 'pending') return this.#begin(statement);
    return this.lease.send(this, statement);
  }

  /** A unique savepoint name within this transaction. */
  nextSavepointName(): string {
    // Unique across the test transaction: MySQL drops an older savepoint of the same name.
    if (this.role.kind === 'savepoint') return this.role.enclosing.nextSavepointName();
    return `txscope_sp_${++this.#savepoints}`;
  }

  // ---- failure ----

  /**
   * Makes the transaction fail with `error`: later statements reject with it, the one running on
   * the server is cancelled, and it rolls back now, without waiting for `fn` to settle.
   */
  fail(error: Error): void {
    if (!isOpen(this.#state.phase)) return;
    this.#state = { phase: 'failed', error };
    if (this.#racers !== null) for (const reject of this.#racers) reject(error);
    const connection = this.lease.heldConnection;
    const mine = this.role.kind !== 'savepoint' || this.#running > 0;
    if (mine && this.lease.busy && connection !== null && this.lease.lost === undefined) {
      this.#cancelling = connection.cancel().catch((e: unknown) => this.engine.report('cancel', e, this.id));
    }
    void this.rollback(reasonOf(error));
  }

  /** Settles like `promise`, or rejects as soon as the transaction fails. */
  race<T>(promise: Promise<T>): Promise<T> {
    const failure = this.failure;
    if (failure !== null) return Promise.reject(failure);
    return new Promise<T>((resolve, reject) => {
      this.#racers ??= [];
      this.#racers.push(reject);
      promise.then(resolve, reject);
    });
  }

  // ---- the end: commit or rollback ----

  /** Commits, or rolls back when the transaction failed or can only roll back. */
  commit(): Promise<void> {
    const failure = this.failure;
    if (failure !== null) {
      return this.rollback('failure').then(() => {
        throw failure;
      });
    }
    if (this.root.rollbackOnly) {
      return this.rollback('rollback_only').then(() => {
        throw errors.rollbackOnly('joined_frame_failed');
      });
    }
    if (this.#beganAt === null) return this.#finish('committed') ?? Promise.resolve();
    this.#state = committing;
    // Statements issued and never awaited inside the transaction land before COMMIT.
    if (this.lease.busy) return this.lease.settled().then(() => this.#sendCommit());
    return this.#sendCommit();
  }

  #sendCommit(): Promise<void> {
    // A connection the driver already knows is dead gets no COMMIT: then nothing was committed.
    const sent = this.lease.heldConnection?.status() !== 'closed';
    const name = this.savepointName;
    const text = name === null ? this.engine.dialect.commit : this.engine.dialect.releaseSavepoint(name);
    return this.lease.send(this, { text, values: noValues, kind: 'commit' }).then(
      (result) => {
        if (this.engine.dialect.committed(result)) {
          // Read-your-writes (rule 20): the scope's later reads wait for a replica to replay this.
          const replicas = this.engine.replicas;
          if (replicas === null || this.session === null || this.readOnly || name !== null) {
            return this.#finish('committed');
          }
          return replicas
            .recordCommit(this.lease.heldConnection, this.session)
            .then(() => this.#finish('committed'));
        }
        return this.#finish('rolled_back', 'commit_rolled_back')?.then(rollbackOnly) ?? rollbackOnly();
      },
      (error: unknown) => this.#commitFailed(error, sent),
    );
  }

  async #commitFailed(error: unknown, sent: boolean): Promise<never> {
    if (!this.engine.isConnectionLost(error)) {
      await this.#finish('rolled_back', 'commit_failed', error);
      throw error;
    }
    this.lease.lost ??= error;
    if (sent) {
      await this.#finish(null);
      throw errors.commitUnknown(error);
    }
    const lost = errors.connectionLost('transaction', error);
    await this.#finish('rolled_back', 'connection_lost', lost);
    throw lost;
  }

  /** Rolls back (once, whoever asks first), after the statements in flight; then finishes. */
  rollback(reason: RollbackReason, error?: unknown): Promise<void> {
    this.#ending ??= this.#rollbackOnce(reason, error ?? this.failure ?? undefined);
    return this.#ending;
  }

  async #rollbackOnce(reason: RollbackReason, error: unknown): Promise<void> {
    this.#state = { phase: 'rolling_back', failure: this.failure };
    if (this.#beganAt !== null && this.lease.lost === undefined) await this.lease.settled();
    // A cancel that arrived late would hit ROLLBACK, or the next borrower's statement.
    if (this.#cancelling !== null) await this.#cancelling;
    const text = this.#rollbackText();
    if (text !== null && this.lease.heldConnection !== null && this.lease.lost === undefined) {
      try {
        await this.lease.send(this, { text, values: noValues, kind: 'control' });
      } catch (e) {
        this.lease.lost ??= e;
        this.engine.report('rollback', e, this.id);
      }
    }
    await this.#finish('rolled_back', reason, error);
  }

  /** ROLLBACK, or for a savepoint role ROLLBACK TO its savepoint; null when there is nothing to undo. */
  #rollbackText(): string | null {
    const role = this.role;
    if (role.kind !== 'savepoint') return this.engine.dialect.rollback;
    const name = this.savepointName;
    if (name === null || role.enclosing.isOver) return null;
    return this.engine.dialect.rollbackToSavepoint(name);
  }

  /** `status` null: unknown, the connection was lost while COMMIT was in flight. */
  #finish(
    status: CompletionStatus | null,
    reason?: RollbackReason,
    error?: unknown,
  ): Promise<void> | undefined {
    if (this.#state.phase === 'ended') return undefined;
    this.#state = { phase: 'ended', failure: this.failure };
    this.engine.activity.activeTransactions--;
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    this.session?.ended(this);
    if (this.role.kind === 'savepoint') savepointEnded(this, this.role.enclosing);
    const released = this.ownsLease || this.lease.lost !== undefined ? this.lease.release(false) : undefined;
    if (released !== undefined) return released.then(() => this.#completed(status, reason, error));
    return this.#completed(status, reason, error);
  }

  #completed(
    status: CompletionStatus | null,
    reason: RollbackReason | undefined,
    error: unknown,
  ): Promise<void> | undefined {
    const beganAt = this.#beganAt;
    if (beganAt !== null) reportOutcome(this, { status, reason, beganAt });
    this.#done?.resolve();
    const callbacks = this.root.callbacks;
    if (callbacks === null || status === null) return undefined;
    // An attempt that will be run again leaves no trace: its callbacks are dropped.
    if (status === 'rolled_back' && error !== undefined && this.willRetry(error)) return undefined;
    return callbacks.runAfterCompletion(this.engine, status, this.id);
  }
}
