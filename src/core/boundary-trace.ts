/**
 * The `txscope:boundary:*` events of a boundary that begins its own transaction. Built only when
 * `txscope:boundary:start` has a subscriber; a subscriber may wrap the boundary's run in a context
 * of its own (the OpenTelemetry context of the transaction's span).
 */
import { type BoundaryEvent, channels } from '../diagnostics.js';
import type { TransactionOptions } from '../options.js';
import type { Engine } from './engine.js';

/** Publishes the start of a boundary and returns its event, to be carried through its attempts. */
export function startBoundary(
  engine: Engine,
  options: Readonly<TransactionOptions>,
  scopeId: number | null,
): BoundaryEvent {
  const event: BoundaryEvent = {
    database: engine.name,
    system: engine.dialect.name,
    label: engine.driver.label,
    scopeId,
    propagation: options.propagation ?? 'required',
    isolation: options.isolation,
    readOnly: options.readOnly ?? false,
    timeoutMs: options.timeoutMs,
    maxAttempts: options.retry?.attempts ?? 1,
    attempt: 0,
    transactionId: null,
  };
  channels.boundaryStart.publish(event);
  return event;
}

/** Runs the boundary, inside the subscriber's wrapper if one was set, and publishes its end. */
export function runTraced<T>(event: BoundaryEvent, run: () => Promise<T>): Promise<T> {
  const startedAt = performance.now();
  let running: Promise<T>;
  try {
    running = event.wrap === undefined ? run() : event.wrap(run);
  } catch (error) {
    running = Promise.reject(error);
  }
  return running.then(
    (result) => {
      event.durationMs = performance.now() - startedAt;
      channels.boundaryEnd.publish(event);
      return result;
    },
    (error: unknown) => {
      event.durationMs = performance.now() - startedAt;
      event.error = error;
      channels.boundaryEnd.publish(event);
      throw error;
    },
  );
}

/** Publishes that attempt `attempt` runs as transaction `transactionId`. */
export function reportAttempt(event: BoundaryEvent, attempt: number, transactionId: number): void {
  event.attempt = attempt;
  event.transactionId = transactionId;
  channels.boundaryAttempt.publish(event);
}

/** Notes why the next attempt runs; published with it. */
export function noteRetry(event: BoundaryEvent, error: unknown, delayMs: number): void {
  event.retryError = error;
  event.retryDelayMs = delayMs;
}
