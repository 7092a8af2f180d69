/**
 * `instrument()`: subscribes to txscope's diagnostics channels and turns them into OpenTelemetry
 * spans (one per transaction boundary) and metrics (the pool's connections, transaction durations).
 */
import diagnostics from 'node:diagnostics_channel';
import { type MeterProvider, metrics, type TracerProvider, trace } from '@opentelemetry/api';
import type {
  BoundaryEvent,
  ConnectionEvent,
  FrameEvent,
  QueryEvent,
  TransactionEvent,
} from '../../diagnostics.js';
import { PoolMetrics } from './metrics.js';
import { TransactionSpans } from './spans.js';

export interface InstrumentOptions {
  /** Where spans go; default the global tracer provider (`trace.setGlobalTracerProvider`, the SDK's `register()`). */
  tracerProvider?: TracerProvider;
  /** Where metrics go; default the global meter provider. */
  meterProvider?: MeterProvider;
  /**
   * Adds a `db.query` span event per statement with its text (never its parameter values). Off by
   * default: statement text may say more than you want in your traces.
   */
  statementText?: boolean;
  /** `false` records no spans; default true. */
  traces?: boolean;
  /** `false` records no metrics; default true. */
  metrics?: boolean;
}

/** What `instrument()` returns. */
export interface Instrumentation {
  /** Stops recording: unsubscribes from every channel. Spans of boundaries still open are not ended. */
  disable(): void;
}

const scope = 'txscope';

/**
 * Records a span per transaction and the OpenTelemetry database client connection metrics. Call it
 * once, after setting up the OpenTelemetry SDK.
 *
 * @example
 * ```ts
 * import { instrument } from 'txscope/otel';
 * const otel = instrument();            // the global tracer and meter providers
 * // ... later, on shutdown:
 * otel.disable();
 * ```
 */
export function instrument(options: InstrumentOptions = {}): Instrumentation {
  const handlers: [string, (message: unknown) => void][] = [];
  const on = <M>(name: string, handle: (message: M) => void): void => {
    handlers.push([name, handle as (message: unknown) => void]);
  };
  let poolMetrics: PoolMetrics | null = null;
  if (options.traces !== false) {
    const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(scope);
    const spans = new TransactionSpans({ tracer, statementText: options.statementText === true });
    on<BoundaryEvent>('txscope:boundary:start', (m) => spans.start(m));
    on<BoundaryEvent>('txscope:boundary:attempt', (m) => spans.attempt(m));
    on<BoundaryEvent>('txscope:boundary:end', (m) => spans.end(m));
    on<QueryEvent>('txscope:query', (m) => spans.query(m));
    on<ConnectionEvent>('txscope:acquire', (m) => spans.acquire(m));
    on<ConnectionEvent>('txscope:release', (m) => spans.release(m));
    on<TransactionEvent>('txscope:commit', (m) => spans.commit(m));
    on<TransactionEvent>('txscope:rollback', (m) => spans.rollback(m));
    on<FrameEvent>('txscope:frame', (m) => spans.frame(m));
  }
  if (options.metrics !== false) {
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(scope);
    const pool = new PoolMetrics(meter);
    poolMetrics = pool;
    on<ConnectionEvent>('txscope:acquire', (m) => pool.acquire(m));
    on<ConnectionEvent>('txscope:release', (m) => pool.release(m));
    on<TransactionEvent>('txscope:commit', (m) => pool.commit(m));
    on<TransactionEvent>('txscope:rollback', (m) => pool.rollback(m));
  }
  for (const [name, handle] of handlers) diagnostics.subscribe(name, handle);
  let enabled = true;
  return {
    disable() {
      if (!enabled) return;
      enabled = false;
      for (const [name, handle] of handlers) diagnostics.unsubscribe(name, handle);
      poolMetrics?.stop();
    },
  };
}
