/**
 * The OpenTelemetry database client connection metrics (`db.client.connection.*`, seconds, by
 * `db.client.connection.pool.name`) and a transaction duration histogram, from the acquire,
 * release, commit and rollback events. Pool counts are the driver pool's own, as of the last
 * connection that moved.
 */
import type { Attributes, Meter, ObservableResult } from '@opentelemetry/api';
import type { ConnectionEvent, TransactionEvent } from '../../diagnostics.js';
import { ErrorCode, TxScopeError } from '../../errors.js';
import { attr } from './attributes.js';

/** The semantic conventions' buckets for connection durations, in seconds. */
const durationBuckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

type Counts = NonNullable<ConnectionEvent['pool']>;

export class PoolMetrics {
  readonly #counts = new Map<string, Counts>();
  /** The attributes of each pool, made once: recording with them allocates nothing more. */
  readonly #pools = new Map<string, Attributes>();
  readonly #waitTime;
  readonly #useTime;
  readonly #timeouts;
  readonly #transactionDuration;
  readonly #observe: () => void;

  constructor(meter: Meter) {
    this.#waitTime = meter.createHistogram('db.client.connection.wait_time', {
      unit: 's',
      description: 'The time it took to obtain an open connection from the pool.',
      advice: { explicitBucketBoundaries: durationBuckets },
    });
    this.#useTime = meter.createHistogram('db.client.connection.use_time', {
      unit: 's',
      description: 'The time between borrowing a connection and returning it to the pool.',
      advice: { explicitBucketBoundaries: durationBuckets },
    });
    this.#timeouts = meter.createCounter('db.client.connection.timeouts', {
      unit: '{timeout}',
      description:
        'The number of connection timeouts that have occurred trying to obtain a connection from the pool.',
    });
    this.#transactionDuration = meter.createHistogram('txscope.transaction.duration', {
      unit: 's',
      description: 'Time from BEGIN to COMMIT or ROLLBACK of a transaction.',
      advice: { explicitBucketBoundaries: durationBuckets },
    });
    const count = meter.createObservableUpDownCounter('db.client.connection.count', {
      unit: '{connection}',
      description:
        'The number of connections that are currently in the state described by the state attribute.',
    });
    const max = meter.createObservableUpDownCounter('db.client.connection.max', {
      unit: '{connection}',
      description: 'The maximum number of open connections allowed.',
    });
    const pending = meter.createObservableUpDownCounter('db.client.connection.pending_requests', {
      unit: '{request}',
      description: 'The number of current pending requests for an open connection.',
    });
    const observeCount = (result: ObservableResult): void => {
      for (const [pool, c] of this.#counts) {
        result.observe(c.idle, { [attr.poolName]: pool, [attr.connectionState]: 'idle' });
        result.observe(c.total - c.idle, { [attr.poolName]: pool, [attr.connectionState]: 'used' });
      }
    };
    const observeMax = (result: ObservableResult): void => {
      for (const [pool, c] of this.#counts) result.observe(c.max, { [attr.poolName]: pool });
    };
    const observePending = (result: ObservableResult): void => {
      for (const [pool, c] of this.#counts) result.observe(c.waiting, { [attr.poolName]: pool });
    };
    count.addCallback(observeCount);
    max.addCallback(observeMax);
    pending.addCallback(observePending);
    this.#observe = () => {
      count.removeCallback(observeCount);
      max.removeCallback(observeMax);
      pending.removeCallback(observePending);
    };
  }

  acquire(event: ConnectionEvent): void {
    if (event.pool !== undefined) this.#counts.set(event.database, event.pool);
    const pool = this.#pool(event.database);
    if (event.error === undefined) {
      this.#waitTime.record(event.durationMs / 1000, pool);
      return;
    }
    if (event.error instanceof TxScopeError && event.error.code === ErrorCode.POOL_TIMEOUT) {
      this.#timeouts.add(1, pool);
    }
  }

  release(event: ConnectionEvent): void {
    if (event.pool !== undefined) this.#counts.set(event.database, event.pool);
    this.#useTime.record(event.durationMs / 1000, this.#pool(event.database));
  }

  #pool(database: string): Attributes {
    let attributes = this.#pools.get(database);
    if (attributes === undefined) {
      attributes = { [attr.poolName]: database };
      this.#pools.set(database, attributes);
    }
    return attributes;
  }

  #outcome(database: string, outcome: string): Attributes {
    const key = `${outcome}\u0000${database}`;
    let attributes = this.#pools.get(key);
    if (attributes === undefined) {
      attributes = { [attr.poolName]: database, [attr.outcome]: outcome };
      this.#pools.set(key, attributes);
    }
    return attributes;
  }

  commit(event: TransactionEvent): void {
    this.#transactionDuration.record(
      (event.durationMs ?? 0) / 1000,
      this.#outcome(event.database, 'committed'),
    );
  }

  rollback(event: TransactionEvent): void {
    const outcome = event.reason === 'commit_unknown' ? 'commit_unknown' : 'rolled_back';
    this.#transactionDuration.record((event.durationMs ?? 0) / 1000, this.#outcome(event.database, outcome));
  }

  stop(): void {
    this.#observe();
    this.#counts.clear();
    this.#pools.clear();
  }
}
