/**
 * A span per transaction boundary, from the boundary's entry to its end: its attempts (each a
 * transaction of its own), their statements, the wait for a connection and COMMIT all happen
 * inside it. It is started in the caller's active OpenTelemetry context, and the boundary runs in
 * a context where it is the active span, so statement spans (instrumentation-pg) nest under it.
 */
import {
  type Attributes,
  type Context,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type {
  BoundaryEvent,
  ConnectionEvent,
  FrameEvent,
  QueryEvent,
  TransactionEvent,
} from '../../diagnostics.js';
import { attr, errorMessage, errorType, isControl, labelAttributes, systemName } from './attributes.js';

/** What a boundary's span gathers from the events of its transactions. */
interface SpanState {
  readonly span: Span;
  readonly transactions: number[];
  statements: number;
  waitMs: number;
  holdMs: number;
  outcome: 'committed' | 'rolled_back' | 'commit_unknown' | 'none';
  reason: string | undefined;
}

export interface SpanOptions {
  readonly tracer: Tracer;
  /** Adds a `db.query` event per statement with its text (never its values). */
  readonly statementText: boolean;
}

export class TransactionSpans {
  readonly #byBoundary = new WeakMap<BoundaryEvent, SpanState>();
  readonly #byTransaction = new Map<number, SpanState>();

  constructor(private readonly options: SpanOptions) {}

  start(event: BoundaryEvent): void {
    const parent = context.active();
    const label = labelAttributes(event.label);
    const namespace = label[attr.namespace];
    const attributes: Attributes = {
      [attr.system]: systemName(event.system),
      ...label,
      [attr.operation]: 'transaction',
      [attr.poolName]: event.database,
      [attr.database]: event.database,
      [attr.propagation]: event.propagation,
      [attr.readOnly]: event.readOnly,
      [attr.maxAttempts]: event.maxAttempts,
      ...(event.isolation === undefined ? {} : { [attr.isolation]: event.isolation }),
      ...(event.timeoutMs === undefined ? {} : { [attr.timeoutMs]: event.timeoutMs }),
    };
    const span = this.options.tracer.startSpan(
      namespace === undefined ? 'transaction' : `transaction ${namespace}`,
      { kind: SpanKind.CLIENT, attributes },
      parent,
    );
    this.#byBoundary.set(event, {
      span,
      transactions: [],
      statements: 0,
      waitMs: 0,
      holdMs: 0,
      outcome: 'none',
      reason: undefined,
    });
    const active: Context = trace.setSpan(parent, span);
    const outer = event.wrap;
    event.wrap = (run) => context.with(active, outer === undefined ? run : () => outer(run));
  }

  attempt(event: BoundaryEvent): void {
    const state = this.#byBoundary.get(event);
    if (state === undefined || event.transactionId === null) return;
    if (event.attempt > 1) {
      state.span.addEvent('txscope.retry', {
        [attr.attempt]: event.attempt,
        [attr.errorType]: errorType(event.retryError),
        ...(event.retryDelayMs === undefined ? {} : { [attr.delayMs]: Math.round(event.retryDelayMs) }),
      });
    }
    state.transactions.push(event.transactionId);
    state.outcome = 'none';
    state.reason = undefined;
    this.#byTransaction.set(event.transactionId, state);
  }

  end(event: BoundaryEvent): void {
    const state = this.#byBoundary.get(event);
    if (state === undefined) return;
    this.#byBoundary.delete(event);
    for (const id of state.transactions) this.#byTransaction.delete(id);
    const { span } = state;
    span.setAttributes({
      [attr.outcome]: state.outcome,
      [attr.statements]: state.statements,
      [attr.attempts]: event.attempt,
      [attr.waitMs]: round(state.waitMs),
      [attr.holdMs]: round(state.holdMs),
      ...(state.reason === undefined ? {} : { [attr.reason]: state.reason }),
      ...(event.transactionId === null ? {} : { [attr.transactionId]: event.transactionId }),
    });
    if ('error' in event) {
      const type = errorType(event.error);
      span.setAttribute(attr.errorType, type);
      span.recordException({ name: type, message: errorMessage(event.error) });
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(event.error) });
    }
    span.end();
  }

  query(event: QueryEvent): void {
    const state = this.#of(event.transactionId);
    if (state === undefined) return;
    if (!isControl(event.text)) state.statements++;
    if (this.options.statementText) {
      state.span.addEvent('db.query', {
        [attr.queryText]: event.text,
        [attr.durationMs]: round(event.durationMs),
        ...(event.error === undefined ? {} : { [attr.errorType]: errorType(event.error) }),
      });
    }
  }

  acquire(event: ConnectionEvent): void {
    const state = this.#of(event.transactionId);
    if (state !== undefined) state.waitMs += event.durationMs;
  }

  release(event: ConnectionEvent): void {
    const state = this.#of(event.transactionId);
    if (state !== undefined) state.holdMs += event.durationMs;
  }

  commit(event: TransactionEvent): void {
    const state = this.#of(event.transactionId);
    if (state !== undefined) state.outcome = 'committed';
  }

  rollback(event: TransactionEvent): void {
    const state = this.#of(event.transactionId);
    if (state === undefined) return;
    const reason = event.reason ?? 'error';
    state.outcome = reason === 'commit_unknown' ? 'commit_unknown' : 'rolled_back';
    state.reason = reason;
    state.span.addEvent('txscope.rollback', {
      [attr.reason]: reason,
      [attr.transactionId]: event.transactionId,
    });
  }

  frame(event: FrameEvent): void {
    const state = this.#of(event.transactionId);
    if (state === undefined) return;
    state.span.addEvent(`txscope.${event.action}`, {
      ...(event.savepoint === undefined ? {} : { [attr.savepoint]: event.savepoint }),
      ...(event.error === undefined ? {} : { [attr.errorType]: errorType(event.error) }),
    });
  }

  #of(transactionId: number | null): SpanState | undefined {
    return transactionId === null ? undefined : this.#byTransaction.get(transactionId);
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
