/**
 * Read replicas (rule 20): where a read-only transaction runs. The least busy healthy replica
 * serves it, unless its scope has committed a write the replica has not replayed yet; otherwise,
 * and whenever no replica is healthy, the primary does. A background probe (started with the first
 * read-only transaction, unref'd) keeps each replica's health, lag and replay position; a replica
 * that fails is skipped and probed again after a back-off. Nothing here runs for a database
 * without replicas: the engine holds none.
 */
import { channels, publish, type RouteEvent } from '../diagnostics.js';
import type { AcquireIntent, Driver, DriverConnection, ReplicationDialect } from '../driver.js';
import type { Engine } from './engine.js';
import type { AcquireRequest } from './pool.js';
import { type Floor, floorOf, setFloor, unknownFloor } from './positions.js';
import { ReplicaConnection, ReplicaTarget, type TargetStats } from './replica-target.js';

export type { TargetStats } from './replica-target.js';

const readOnlyIntent: AcquireIntent = Object.freeze({ readOnly: true });
const noValues: readonly unknown[] = Object.freeze([]);
export const defaultMaxReplicaLagMs = 1000;
/** Statements an autocommit read starts with: they commit no write to wait for. */
const readStatement = /^\s*(select|show|explain|values|table)\b/i;

type Reason = RouteEvent['reason'];

export class ReplicaSet {
  readonly targets: readonly ReplicaTarget[];
  readonly #engine: Engine;
  readonly #replication: ReplicationDialect | undefined;
  readonly #probeMs: number;
  #probing: NodeJS.Timeout | null = null;
  #started = false;
  #closed = false;
  /** Where the next tie between equally busy replicas starts (round robin among ties). */
  #turn = 0;

  constructor(engine: Engine, options: { replicas: readonly Driver[]; maxLagMs: number | undefined }) {
    this.#engine = engine;
    this.#replication = engine.dialect.replication;
    const maxLagMs = options.maxLagMs ?? defaultMaxReplicaLagMs;
    this.#probeMs = Math.min(1000, Math.max(50, maxLagMs / 2));
    const seen = new Map<string, number>();
    this.targets = options.replicas.map((driver) => {
      const n = (seen.get(driver.label) ?? 0) + 1;
      seen.set(driver.label, n);
      const label = n === 1 && driver.label !== 'primary' ? driver.label : `${driver.label}#${n}`;
      return new ReplicaTarget(driver, label, {
        maxLagMs,
        replication: this.#replication,
        // A probe in flight when the database closes fails on a closed pool: not news.
        report: (error) => {
          if (!this.#closed) engine.report('replica', error, null);
        },
      });
    });
  }

  /**
   * A connection for a read-only transaction: a replica's when one may serve it, else the
   * primary's. Never fails for a replica's sake: only the primary's own failure reaches the caller.
   */
  acquire(request: AcquireRequest): Promise<DriverConnection> | DriverConnection {
    if (!this.#started) this.#startProbing();
    // A read-only transaction inside another of the same chain (requires_new, not_supported, a pin)
    // stays on the primary, with the rules it has today.
    if (request.held.length > 0) return this.#primary(request, 'suspended');
    const session = request.session ?? null;
    const floor = session === null ? undefined : floorOf(session);
    if (floor === undefined) return this.#anyReplica(request);
    return this.#replayedReplica(request, session as object, floor);
  }

  /** The least busy healthy replicas first; ties take turns. */
  #candidates(): ReplicaTarget[] {
    const serving = this.targets.filter((target) => target.serves);
    if (serving.length < 2) return serving;
    const start = this.#turn++ % serving.length;
    const rotated = [...serving.slice(start), ...serving.slice(0, start)];
    return rotated.sort((a, b) => a.checkedOut - b.checkedOut);
  }

  /** No position to wait for: the first candidate that gives a connection (synchronously when it can). */
  #anyReplica(request: AcquireRequest): Promise<DriverConnection> | DriverConnection {
    const candidates = this.#candidates();
    const next = (i: number): Promise<DriverConnection> | DriverConnection => {
      const target = candidates[i];
      if (target === undefined) return this.#primary(request, 'no_healthy_replica');
      let taken: ReplicaConnection | Promise<ReplicaConnection>;
      try {
        taken = target.take();
      } catch (error) {
        this.#refused(target, error);
        return next(i + 1);
      }
      if (!(taken instanceof Promise)) return this.#routed(request, taken, 'replica');
      return taken.then(
        (connection) => this.#routed(request, connection, 'replica'),
        (error: unknown) => {
          this.#refused(target, error);
          return next(i + 1);
        },
      );
    };
    return next(0);
  }

  /** A replica that could not give a connection: down, unless only its pool was full. */
  #refused(target: ReplicaTarget, error: unknown): void {
    if (!ReplicaTarget.isPoolTimeout(error)) target.down(error);
  }

  /** After a write: a replica that has replayed the scope's last commit, else the primary. */
  async #replayedReplica(request: AcquireRequest, session: object, floor: Floor): Promise<DriverConnection> {
    const replication = this.#replication;
    let candidates = this.#candidates();
    if (candidates.length === 0) return this.#primary(request, 'no_healthy_replica');
    if (replication === undefined) return this.#primary(request, 'not_replayed');
    let required: string;
    if (floor.kind === 'position' && replication.isPosition(floor.position)) required = floor.position;
    else {
      const current = await this.#primaryPosition();
      if (current === null) return this.#primary(request, 'not_replayed');
      required = current;
      setFloor(session, { kind: 'position', position: current });
    }
    // Replicas known to have replayed far enough first: they need no question before BEGIN.
    const known = candidates.filter((t) => t.replayed !== null && replication.reached(t.replayed, required));
    for (const target of known) {
      const connection = await this.#take(target);
      if (connection !== null) return this.#routed(request, connection, 'replayed');
    }
    candidates = candidates.filter((target) => !known.includes(target));
    const target = candidates[0];
    if (target === undefined) return this.#primary(request, 'not_replayed');
    // One question on the replica's connection: has it replayed the scope's last commit by now?
    const connection = await this.#take(target);
    if (connection === null) return this.#primary(request, 'not_replayed');
    try {
      await target.readStatus((connection as ReplicaConnection).inner);
    } catch (error) {
      target.down(error);
      target.giveBack(connection, true);
      return this.#primary(request, 'not_replayed');
    }
    if (target.replayed !== null && replication.reached(target.replayed, required) && target.serves) {
      return this.#routed(request, connection, 'replayed');
    }
    target.giveBack(connection, false);
    return this.#primary(request, 'not_replayed');
  }

  /** A connection of `target`, or null when it could not give one (then it is marked down). */
  async #take(target: ReplicaTarget): Promise<DriverConnection | null> {
    try {
      return await target.take();
    } catch (error) {
      this.#refused(target, error);
      return null;
    }
  }

  #primary(request: AcquireRequest, reason: Reason): Promise<DriverConnection> | DriverConnection {
    this.#report(request, 'primary', reason);
    return this.#engine.driver.acquire(readOnlyIntent);
  }

  #routed(request: AcquireRequest, connection: DriverConnection, reason: Reason): DriverConnection {
    if (connection instanceof ReplicaConnection) this.#report(request, connection.target.label, reason);
    return connection;
  }

  #report(request: AcquireRequest, target: string, reason: Reason): void {
    if (!channels.route.hasSubscribers) return;
    const event: RouteEvent = {
      database: this.#engine.name,
      scopeId: request.scopeId,
      transactionId: request.transactionId,
      target,
      reason,
    };
    publish(channels.route, event);
  }

  /** The primary's current position (one statement on the primary), or null when it cannot say. */
  async #primaryPosition(): Promise<string | null> {
    const text = this.#replication?.currentPosition;
    if (text === undefined) return null;
    const driver = this.#engine.driver;
    try {
      if (driver.query !== undefined) return positionIn(await driver.query(text, noValues));
      const connection = await driver.acquire();
      let destroy = false;
      try {
        return positionIn(await connection.query(text, noValues));
      } catch (error) {
        destroy = true;
        throw error;
      } finally {
        driver.release(connection, { destroy });
      }
    } catch (error) {
      this.#engine.report('replica', error, null);
      return null;
    }
  }

  /**
   * Gives back a connection if it is a replica's (returns false for the primary's): the release
   * of a read-only transaction's connection is the end of the transaction it served.
   */
  release(connection: DriverConnection, destroy: boolean): boolean {
    if (!(connection instanceof ReplicaConnection)) return false;
    connection.target.transactions++;
    connection.target.giveBack(connection, destroy);
    return true;
  }

  /**
   * After a read-write transaction of `session` committed: the primary's position, asked on the
   * committing connection before it goes back. Never throws: without a position, the scope's
   * reads ask the primary for one later.
   */
  async recordCommit(connection: DriverConnection | null, session: object): Promise<void> {
    const text = this.#replication?.currentPosition;
    if (text === undefined || connection === null) {
      setFloor(session, unknownFloor);
      return;
    }
    try {
      const position = positionIn(await connection.query(text, noValues));
      setFloor(session, position === null ? unknownFloor : { kind: 'position', position });
    } catch (error) {
      setFloor(session, unknownFloor);
      this.#engine.report('replica', error, null);
    }
  }

  /** An autocommit statement of `session` ran on the primary: unless it only read, it may have written. */
  ranInAutocommit(session: object, text: string): void {
    if (!readStatement.test(text)) setFloor(session, unknownFloor);
  }

  #startProbing(): void {
    this.#started = true;
    void this.#probe();
  }

  async #probe(): Promise<void> {
    if (this.#closed) return;
    const now = performance.now();
    await Promise.all(this.targets.map((target) => target.probe(now)));
    if (this.#closed) return;
    this.#probing = setTimeout(() => void this.#probe(), this.#probeMs);
    this.#probing.unref();
  }

  stats(primary: { statements: number; transactions: number }): TargetStats[] {
    const replicas = this.targets.map((target) => target.stats());
    let statements = primary.statements;
    let transactions = primary.transactions;
    for (const replica of replicas) {
      statements -= replica.statements;
      transactions -= replica.transactions;
    }
    const main: TargetStats = {
      label: 'primary',
      role: 'primary',
      health: 'healthy',
      lagMs: null,
      statements,
      transactions: Math.max(0, transactions),
      pool: this.#engine.driver.counts(),
    };
    return [main, ...replicas];
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#probing !== null) clearTimeout(this.#probing);
    await Promise.all(this.targets.map((target) => target.driver.close()));
  }
}

function positionIn(result: { rows: unknown[] }): string | null {
  const position = (result.rows[0] as { position?: unknown } | undefined)?.position;
  return typeof position === 'string' ? position : null;
}
