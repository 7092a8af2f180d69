/** A checked-out mysql2 connection, and what txscope knows of it across checkouts. */
import type { ConnectionStatus, DriverConnection, DriverResult } from '../../driver.js';
import { classifyMysqlError, ER_LOCK_DEADLOCK } from './classify.js';

/** The part of a mysql2 core connection (`poolConnection.connection`) txscope uses. */
export interface MysqlCoreConnectionLike {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** The part of a `mysql2/promise` `PoolConnection` txscope uses. */
export interface MysqlPoolConnectionLike {
  query(options: { sql: string; values?: unknown[] }): Promise<[unknown, unknown]>;
  release(): void;
  destroy(): void;
  readonly threadId: number | null;
  readonly connection: MysqlCoreConnectionLike;
}

/** What txscope knows of a mysql2 connection across checkouts (the promise wrapper is new each time). */
export interface CoreState {
  status: ConnectionStatus;
  /** Set by the error listener: the connection died, possibly while idle in the pool. */
  lost: Error | null;
  /** When the connection is to be recycled (maxLifetimeSeconds), in ms since the epoch. */
  readonly expiresAt: number;
}

/**
 * What `db.query` returns on MySQL: for INSERT/UPDATE/DELETE, `rows` is empty, `rowCount` is
 * the affected rows and `insertId` the AUTO_INCREMENT value the statement generated.
 *
 * @example
 * ```ts
 * const { insertId } = (await db.query(sql`insert into users (name) values (${name})`)) as MysqlQueryResult;
 * ```
 */
export interface MysqlQueryResult<Row = Record<string, unknown>> {
  rows: Row[];
  rowCount: number;
  insertId?: number | string;
}

/** SERVER_STATUS_IN_TRANS in the OK packet's status flags. */
const SERVER_STATUS_IN_TRANS = 1;

/** mysql2's OK packet (`ResultSetHeader`): what INSERT, UPDATE, DDL and transaction control answer. */
interface ResultHeader {
  affectedRows: number;
  insertId: number | string;
  serverStatus?: number;
}

function isHeader(value: unknown): value is ResultHeader {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    'affectedRows' in value &&
    'insertId' in value
  );
}

/** mysql2 answers multi-result calls with one field list (or undefined) per result. */
function isMultiResult(fields: unknown): boolean {
  return Array.isArray(fields) && fields.length > 0 && (Array.isArray(fields[0]) || fields[0] === undefined);
}

export class MysqlConnection implements DriverConnection {
  constructor(
    readonly conn: MysqlPoolConnectionLike,
    readonly state: CoreState,
    readonly killQuery: (threadId: number) => Promise<void>,
  ) {}

  async query(
    text: string,
    values: readonly unknown[],
  ): Promise<DriverResult & { insertId?: number | string }> {
    if (this.state.lost !== null) throw this.state.lost;
    let result: [unknown, unknown];
    try {
      result = await this.conn.query(
        values.length === 0 ? { sql: text } : { sql: text, values: values as unknown[] },
      );
    } catch (error) {
      if (classifyMysqlError(error) === 'connection_lost') {
        this.state.lost ??= error as Error;
      } else if ((error as { errno?: unknown }).errno === ER_LOCK_DEADLOCK) {
        // InnoDB rolled the whole transaction back; other errors leave its state as it was.
        this.state.status = 'idle';
      }
      throw error;
    }
    const [rows, fields] = result;
    if (isHeader(rows)) return this.#header(rows);
    if (Array.isArray(rows) && isMultiResult(fields)) {
      // CALL, or multipleStatements: the first row set, and the status of the last OK packet.
      const last = rows.at(-1);
      if (isHeader(last)) this.#header(last);
      const first = rows.find((r): r is unknown[] => Array.isArray(r)) ?? [];
      return { rows: first, rowCount: first.length };
    }
    // A result set's final packet carries the status too, but mysql2 does not expose it; a SELECT
    // does not change the transaction state (except under autocommit=0, which txscope does not use).
    const list = Array.isArray(rows) ? rows : [];
    return { rows: list, rowCount: list.length };
  }

  #header(header: ResultHeader): DriverResult & { insertId: number | string } {
    if (typeof header.serverStatus === 'number') {
      this.state.status = header.serverStatus & SERVER_STATUS_IN_TRANS ? 'in_transaction' : 'idle';
    }
    return { rows: [], rowCount: Number(header.affectedRows), insertId: header.insertId };
  }

  status(): ConnectionStatus {
    // A connection known dead gets nothing more: a COMMIT not sent on it committed nothing.
    return this.state.lost !== null ? 'closed' : this.state.status;
  }

  async cancel(): Promise<void> {
    const threadId = this.conn.threadId;
    if (typeof threadId === 'number') await this.killQuery(threadId);
  }
}
