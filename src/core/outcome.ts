/** How a transaction ended, as counters and the `txscope:commit`/`txscope:rollback` events tell it. */
import { channels, publish, type TransactionEvent } from '../diagnostics.js';
import { ErrorCode, TxScopeError } from '../errors.js';
import type { Engine } from './engine.js';
import type { CompletionStatus } from './hooks.js';

/** Why a transaction rolled back, as `txscope:rollback` events say. */
export type RollbackReason =
  | 'error'
  | 'failure'
  | 'rollback_only'
  | 'timeout'
  | 'aborted'
  | 'scope_end'
  | 'connection_lost'
  | 'commit_failed'
  | 'commit_rolled_back'
  /** The connection was lost while COMMIT was in flight: it may have committed (ERR_COMMIT_UNKNOWN). */
  | 'commit_unknown';

/** The transaction an event is about. */
export interface OutcomeSubject {
  readonly engine: Engine;
  readonly id: number;
  readonly session: { readonly id: number } | null;
  readonly isolation?: string | undefined;
  readonly readOnly?: boolean;
}

/** When BEGIN is sent, read only when an event will carry the duration; 0 still says it was sent. */
export function beginTime(): number {
  return channels.commit.hasSubscribers || channels.rollback.hasSubscribers ? performance.now() : 0;
}

/** Publishes that a transaction sent BEGIN (`txscope:begin`). */
export function reportBegin(subject: OutcomeSubject): void {
  if (!channels.begin.hasSubscribers) return;
  publish(
    channels.begin,
    transactionEvent(subject, { isolation: subject.isolation, readOnly: subject.readOnly }),
  );
}

function transactionEvent(subject: OutcomeSubject, extra: Partial<TransactionEvent>): TransactionEvent {
  return {
    database: subject.engine.name,
    scopeId: subject.session?.id ?? null,
    transactionId: subject.id,
    ...extra,
  };
}

/**
 * Counts a transaction that sent BEGIN and publishes its end. `status` null: unknown, the
 * connection was lost while COMMIT was in flight.
 */
export function reportOutcome(
  subject: OutcomeSubject,
  outcome: { status: CompletionStatus | null; reason: RollbackReason | undefined; beganAt: number },
): void {
  const activity = subject.engine.activity;
  activity.transactions++;
  const durationMs = since(outcome.beganAt);
  if (outcome.status === 'committed') {
    activity.commits++;
    if (channels.commit.hasSubscribers) publish(channels.commit, transactionEvent(subject, { durationMs }));
    return;
  }
  // A COMMIT whose answer was lost is neither a commit nor a rollback: it counts as a transaction.
  if (outcome.status !== null) activity.rollbacks++;
  if (channels.rollback.hasSubscribers) {
    const reason = outcome.status === null ? 'commit_unknown' : (outcome.reason ?? 'connection_lost');
    publish(channels.rollback, transactionEvent(subject, { durationMs, reason }));
  }
}

/** Milliseconds since `start`; 0 when the start was not timed (no subscriber when it began). */
function since(start: number): number {
  return start === 0 ? 0 : performance.now() - start;
}

/** The reason a failure gives for the rollback it causes. */
export function reasonOf(failure: Error): RollbackReason {
  if (!(failure instanceof TxScopeError)) return 'error';
  switch (failure.code) {
    case ErrorCode.TRANSACTION_TIMEOUT:
      return 'timeout';
    case ErrorCode.ABORTED:
      return 'aborted';
    case ErrorCode.SCOPE_CLOSED:
      return 'scope_end';
    case ErrorCode.CONNECTION_LOST:
      return 'connection_lost';
    default:
      return 'error';
  }
}

/** Whether `rollbackOn` says `error` rolls back; a throwing `rollbackOn` rolls back. */
export function rollsBack(rollbackOn: (error: unknown) => boolean, error: unknown): boolean {
  try {
    return rollbackOn(error) !== false;
  } catch {
    return true;
  }
}

/** What a transaction fails with: the driver's error itself, which is nearly always an Error. */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new TxScopeError(ErrorCode.TRANSACTION_CLOSED, String(error));
}
