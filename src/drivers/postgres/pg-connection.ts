/**
 * A checked-out node-postgres client: statements through its callback API (one promise per
 * statement, no more), BEGIN sent together with a transaction's first statement, and the
 * protocol-level cancel.
 */
import type { BeginRequest, ConnectionStatus, DriverConnection, DriverResult } from '../../driver.js';
import { sendCancelRequest } from './cancel.js';
import { classifyPostgresError } from './classify.js';

/** A statement by its text and parameter values. */
export interface PgStatement {
  readonly text: string;
  readonly values: readonly unknown[];
}

/** A result as node-postgres hands it over: one, or one per statement of a multi-statement text. */
interface PgResult {
  rows: unknown[];
  rowCount: number | null;
  command: string;
}

type PgCallback = (error: Error | null, result: PgResult | PgResult[]) => void;

/** The part of a node-postgres `PoolClient` txscope uses. */
export interface PgClientLike {
  query(text: string, callback: PgCallback): void;
  query(text: string, values: unknown[], callback: PgCallback): void;
  query(submittable: PgSubmittable): unknown;
  release(destroy?: Error | boolean): void;
  getTransactionStatus?(): string | null;
  readonly processID?: number | null;
  readonly secretKey?: number | null;
  readonly host?: string;
  readonly port?: number;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** The protocol writer node-postgres hands a submittable query. */
interface PgProtocolConnection {
  parse(query: { text: string; name?: string; types?: unknown[] }): void;
  bind(config: { portal?: string; statement?: string; values?: unknown[] }): void;
  execute(config: { portal?: string; rows?: number }): void;
}

/** node-postgres's own `Query` class, which txscope extends: its parsing of rows stays pg's. */
export interface PgQueryClass {
  new (
    text: string,
    values: unknown[],
    callback: PgCallback,
  ): PgSubmittable & {
    requiresPreparation(): boolean;
    prepare(connection: PgProtocolConnection): void;
    handleCommandComplete(message: unknown, connection: unknown): void;
  };
}

interface PgSubmittable {
  submit(connection: unknown): unknown;
}

/** A statement preceded by BEGIN: both behind one Sync, so a failed BEGIN skips the statement. */
export type BeginQueryClass = new (
  begin: BeginRequest,
  statement: { text: string; values: unknown[] },
  callback: PgCallback,
) => PgSubmittable;

/**
 * Builds the BEGIN-carrying query on top of pg's `Query`: BEGIN's Parse/Bind/Execute go out ahead
 * of the statement's own messages in the same write, and its CommandComplete is taken here
 * instead of being added to the statement's result.
 */
export function beginQueryClass(Query: PgQueryClass): BeginQueryClass {
  return class BeginQuery extends Query {
    #pending: number;
    readonly #begin: readonly string[];
    readonly #begun: () => void;

    constructor(begin: BeginRequest, statement: { text: string; values: unknown[] }, callback: PgCallback) {
      super(statement.text, statement.values, callback);
      this.#begin = begin.statements;
      this.#pending = begin.statements.length;
      this.#begun = () => begin.began();
    }

    // The extended protocol even without parameters: BEGIN's messages travel ahead in the same Sync.
    override requiresPreparation(): boolean {
      return true;
    }

    override prepare(connection: PgProtocolConnection): void {
      for (const text of this.#begin) {
        connection.parse({ text, name: '', types: [] });
        connection.bind({ portal: '', statement: '', values: [] });
        connection.execute({ portal: '', rows: 0 });
      }
      super.prepare(connection);
    }

    override handleCommandComplete(message: unknown, connection: unknown): void {
      if (this.#pending > 0) {
        this.#pending--;
        if (this.#pending === 0) this.#begun();
        return;
      }
      super.handleCommandComplete(message, connection);
    }
  };
}

/** The first error each client emitted: it is dead from then on. */
const clientErrors = new WeakMap<PgClientLike, Error>();
const guarded = new WeakSet<PgClientLike>();

/**
 * pg-pool removes its own 'error' listener from a client the moment it hands it out, and the
 * caller gets the client only later: an error parsed in that gap (a backend terminated right after
 * startup, its FATAL in the same chunk as ReadyForQuery) would be an unhandled 'error' event and
 * crash the process. So every client gets, synchronously at checkout, a listener of ours that
 * stays for its whole life.
 */
export function guard(client: PgClientLike): void {
  if (guarded.has(client)) return;
  guarded.add(client);
  client.on('error', (error) => {
    if (!clientErrors.has(client)) clientErrors.set(client, error);
  });
}

/** A statement by text and values: node-postgres copies a config object on every query, not a string. */
function send(client: PgClientLike, statement: PgStatement, callback: PgCallback): void {
  if (statement.values.length === 0) client.query(statement.text, callback);
  else client.query(statement.text, statement.values as unknown[], callback);
}

function toResult(result: PgResult | PgResult[]): DriverResult {
  // A text of several statements answers with one result each: the last one is the statement's.
  const last = Array.isArray(result) ? (result.at(-1) as PgResult) : result;
  return { rows: last.rows, rowCount: last.rowCount ?? last.rows.length, command: last.command };
}

/**
 * Runs one autocommit statement on a client just taken from the pool and gives it back: pooled
 * again only clean (a transaction the statement left open is rolled back first), destroyed when
 * the client died.
 */
export function runOnce(
  client: PgClientLike,
  statement: PgStatement,
  done: (error: unknown, result?: DriverResult) => void,
): void {
  const dead = clientErrors.get(client);
  if (dead !== undefined) {
    client.release(true);
    done(dead);
    return;
  }
  send(client, statement, (error, result) => {
    giveBack(client, error);
    if (error) done(error);
    else done(undefined, toResult(result));
  });
}

function giveBack(client: PgClientLike, error: Error | null): void {
  // The client's own 'error' event may come after the statement's error: the error itself tells.
  if (clientErrors.has(client) || (error !== null && classifyPostgresError(error) === 'connection_lost')) {
    client.release(true);
    return;
  }
  const status = client.getTransactionStatus?.();
  if (status !== 'T' && status !== 'E') {
    client.release();
    return;
  }
  client.query('ROLLBACK', (error) => client.release(error ? true : undefined));
}

export class PgConnection implements DriverConnection {
  constructor(
    readonly client: PgClientLike,
    readonly BeginQuery: BeginQueryClass,
  ) {
    guard(client);
  }

  /** The error the client died of, or null while it is alive. */
  get lost(): Error | null {
    return clientErrors.get(this.client) ?? null;
  }

  query(text: string, values: readonly unknown[]): Promise<DriverResult> {
    const lost = this.lost;
    if (lost !== null) return Promise.reject(lost);
    return new Promise<DriverResult>((resolve, reject) => {
      const callback: PgCallback = (error, result) => (error ? reject(error) : resolve(toResult(result)));
      // (inlined rather than `send`: this is every statement's path)
      if (values.length === 0) this.client.query(text, callback);
      else this.client.query(text, values as unknown[], callback);
    });
  }

  queryAfterBegin(text: string, values: readonly unknown[], begin: BeginRequest): Promise<DriverResult> {
    // Without parameters a text may hold several statements, which the extended protocol refuses:
    // such a text waits for BEGIN instead of riding with it.
    if (values.length === 0 && text.includes(';')) return this.#afterSeparateBegin(text, begin);
    const lost = this.lost;
    if (lost !== null) return Promise.reject(lost);
    return new Promise<DriverResult>((resolve, reject) => {
      const statement = { text, values: values as unknown[] };
      const query = new this.BeginQuery(begin, statement, (error, result) =>
        error ? reject(error) : resolve(toResult(result)),
      );
      this.client.query(query);
    });
  }

  async #afterSeparateBegin(text: string, begin: BeginRequest): Promise<DriverResult> {
    for (const statement of begin.statements) await this.query(statement, []);
    begin.began();
    return this.query(text, []);
  }

  status(): ConnectionStatus {
    // The client knows it is dead: nothing more will be sent on it.
    if (this.lost !== null) return 'closed';
    switch (this.client.getTransactionStatus?.()) {
      case 'I':
        return 'idle';
      case 'T':
        return 'in_transaction';
      case 'E':
        return 'failed';
      default:
        return 'unknown';
    }
  }

  async cancel(): Promise<void> {
    const { processID, secretKey, host, port } = this.client;
    if (typeof processID !== 'number' || typeof secretKey !== 'number') return;
    await sendCancelRequest({ host: host ?? 'localhost', port: port ?? 5432, processID, secretKey });
  }
}
