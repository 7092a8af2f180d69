/**
 * A connection reserved from postgres.js (`sql.reserve()`): statements through `unsafe`, the
 * transaction status followed from command tags (postgres.js does not expose the server's), the
 * death of the connection watched so that nothing is ever written to a closed one, and the
 * protocol-level cancel.
 */
import type { ConnectionStatus, DriverConnection, DriverResult } from '../../driver.js';
import { type CancelTarget, sendCancelRequest } from './cancel.js';

/** The backend key of a postgres.js connection (`query.state`): what a CancelRequest names. */
export interface PostgresJsBackend {
  readonly pid: number | null;
  readonly secret: number | null;
}

/** What a postgres.js query resolves with: rows, with the command tag and count alongside. */
export interface PostgresJsResult extends Array<unknown> {
  readonly count: number | null;
  readonly command: string | null;
}

/** A postgres.js query: a lazy promise, sent on first `then`. */
export interface PostgresJsQuery extends Promise<PostgresJsResult | PostgresJsResult[]> {
  /** The backend of the connection it was sent on, once sent; null while queued. */
  readonly state: PostgresJsBackend | null;
  cancel(): unknown;
}

/**
 * postgres.js's own connection object, as its `onexecute` query option hands it over: `reserved`
 * is null once the connection closed (or went back), `onclose` is called once when it closes.
 */
export interface PostgresJsLink {
  readonly id: number;
  readonly reserved: unknown;
  onclose: ((error: Error) => void) | null | undefined;
  terminate(): void;
}

/** Options of `unsafe` txscope passes. */
export interface PostgresJsQueryOptions {
  prepare?: boolean;
  simple?: boolean;
  /** Called with the connection once the query is written, when postgres.js may pipeline more. */
  onexecute?: (link: PostgresJsLink) => unknown;
}

/** What `sql.unsafe` and a reserved `sql` share. */
export interface PostgresJsUnsafe {
  unsafe(text: string, values?: unknown[], options?: PostgresJsQueryOptions): PostgresJsQuery;
}

/** A reserved postgres.js `sql` (`await sql.reserve()`). */
export interface PostgresJsReservedLike extends PostgresJsUnsafe {
  release(): void;
}

/** What the driver gives each connection. */
export interface PostgresJsConnectionSettings {
  /** Where a CancelRequest for `backend` goes. */
  cancelTarget(backend: PostgresJsBackend): CancelTarget | null;
  /** A connection seen for the first time (pool accounting). */
  linked(link: PostgresJsLink): void;
}

/** Bound statements are prepared (named) and cached per connection, as postgres.js's `sql` does. */
const bound: PostgresJsQueryOptions = Object.freeze({ prepare: true });
const noop = (): void => {};

type Tracked = 'idle' | 'in_transaction' | 'failed';

/** The result of a text of several statements is the last one's. */
export function toResult(result: PostgresJsResult | PostgresJsResult[]): DriverResult {
  const last = 'command' in result ? result : (result.at(-1) as PostgresJsResult | undefined);
  if (last === undefined) return { rows: [], rowCount: 0 };
  return { rows: last, rowCount: last.count ?? last.length, command: last.command ?? undefined };
}

/** ROLLBACK TO SAVEPOINT answers with the ROLLBACK tag, yet the transaction goes on. */
const rollbackToSavepoint = /^\s*rollback\s+(?:work\s+|transaction\s+)?to\b/i;

/** The transaction status after a statement of `text` answered with `command`, from `before`. */
function after(before: Tracked, command: string | null, text: string): Tracked {
  switch (command) {
    case 'BEGIN':
      return 'in_transaction';
    case 'ROLLBACK':
      return rollbackToSavepoint.test(text) ? 'in_transaction' : 'idle';
    case 'COMMIT':
    case 'PREPARE TRANSACTION':
      return 'idle';
    default:
      return before;
  }
}

export class PostgresJsConnection implements DriverConnection {
  #tracked: Tracked = 'idle';
  /** The error the connection died of, or null while it is alive. */
  lost: unknown = null;
  /** It died with a statement in flight (postgres.js then keeps that statement's state; see the driver). */
  lostInFlight = false;
  /** postgres.js's connection object, once a statement has told it. */
  link: PostgresJsLink | null = null;
  #running: PostgresJsQuery | null = null;
  readonly #linking: PostgresJsQueryOptions;
  readonly #boundLinking: PostgresJsQueryOptions;

  constructor(
    readonly reserved: PostgresJsReservedLike,
    readonly settings: PostgresJsConnectionSettings,
    readonly classifyLost: (error: unknown) => boolean,
  ) {
    const onexecute = (link: PostgresJsLink): true => {
      this.#link(link);
      return true;
    };
    this.#linking = { onexecute };
    this.#boundLinking = { prepare: true, onexecute };
  }

  #link(link: PostgresJsLink): void {
    if (this.link === link) return;
    this.link = link;
    // postgres.js calls `onclose` of a connection once, when its socket closes: from then on
    // writing to it would throw inside postgres.js (its socket is gone), so nothing more is sent.
    link.onclose = (error) => {
      if (this.lost === null) this.lost = error;
    };
    this.settings.linked(link);
  }

  /** Forgets the connection's close callback once it goes back: a later close is no longer ours. */
  unlink(): void {
    if (this.link !== null && this.link.onclose !== undefined) this.link.onclose = null;
  }

  query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    if (this.lost !== null) return Promise.reject(this.lost);
    const linked = this.link !== null;
    let query: PostgresJsQuery;
    if (values.length === 0) {
      // Without parameters: the simple protocol, one round trip, several statements allowed.
      query = linked ? this.reserved.unsafe(text) : this.reserved.unsafe(text, [], this.#linking);
    } else {
      // A bound statement not yet prepared on this connection is written only after its Describe
      // returned, where postgres.js does not call `onexecute`: an empty simple query, in the same
      // write, tells which connection this is.
      if (!linked) this.reserved.unsafe('', [], this.#linking).then(noop, noop);
      query = this.reserved.unsafe(text, values as unknown[], linked ? bound : this.#boundLinking);
    }
    this.#running = query;
    return query.then(
      (result) => {
        this.#running = null;
        this.#settled(text, result);
        return toResult(result);
      },
      (error: unknown) => {
        this.#running = null;
        if (this.classifyLost(error)) {
          if (this.lost === null) this.lost = error;
          this.lostInFlight = true;
        } else if (this.#tracked === 'in_transaction') this.#tracked = 'failed';
        throw error;
      },
    );
  }

  #settled(text: string, result: PostgresJsResult | PostgresJsResult[]): void {
    if ('command' in result) {
      this.#tracked = after(this.#tracked, result.command, text);
      return;
    }
    // Several statements in one text: each tag in turn (a ROLLBACK TO among them is not told apart).
    for (const each of result) this.#tracked = after(this.#tracked, each.command, '');
  }

  status(): ConnectionStatus {
    if (this.lost !== null || (this.link !== null && this.link.reserved === null)) return 'closed';
    return this.#tracked;
  }

  async cancel(): Promise<void> {
    const backend = this.#running?.state;
    if (backend === undefined || backend === null) return;
    const target = this.settings.cancelTarget(backend);
    if (target !== null) await sendCancelRequest(target);
  }
}
