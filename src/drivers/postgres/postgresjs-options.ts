/** postgres.js's shapes txscope relies on, its options, its error codes and the driver's label. */
import type { ErrorKind } from '../../driver.js';
import { labelOfParts, labelOfUrl } from '../runtime.js';
import { classifyPostgresError } from './classify.js';
import type { PostgresJsReservedLike, PostgresJsUnsafe } from './postgresjs-connection.js';

/** The options of a postgres.js `Sql`, as it keeps them parsed (`sql.options`). */
export interface PostgresJsParsedOptions {
  readonly max: number;
  readonly host: readonly string[];
  readonly port: readonly number[];
  /** The Unix socket path, or false. */
  readonly path: string | false;
  readonly database: string;
  onclose?: ((connectionId: number) => void) | undefined;
}

/** The part of a postgres.js `Sql` (what `postgres(url, options)` returns) txscope uses. */
export interface PostgresJsSqlLike extends PostgresJsUnsafe {
  reserve(): Promise<PostgresJsReservedLike>;
  end(options?: { timeout?: number | null }): Promise<void>;
  readonly options: PostgresJsParsedOptions;
}

/**
 * postgres.js options (its own names, passed through as they are) plus `url` and
 * `acquireTimeoutMillis`. Connection strings and passwords never appear in txscope's errors or
 * events.
 */
export interface PostgresJsOptions {
  /** A connection string (`postgres://user:pass@host:5432/db`): postgres.js's first argument. */
  url?: string;
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string | (() => string | Promise<string>);
  ssl?: unknown;
  /** Pool size; default 10. */
  max?: number;
  /** Seconds an idle connection stays open (postgres.js: forever by default). */
  idle_timeout?: number;
  /** Seconds a connection lives (postgres.js: 30 to 60 minutes by default). */
  max_lifetime?: number | null;
  /** Seconds to open a connection (postgres.js default 30). */
  connect_timeout?: number;
  /**
   * Prepared (named) statements cached per connection, so that a statement seen before takes one
   * round trip; default true. Set false behind PgBouncer in transaction mode.
   */
  prepare?: boolean;
  /** How long an acquire waits for a connection before `ERR_POOL_TIMEOUT`; default 10000. */
  acquireTimeoutMillis?: number;
  [option: string]: unknown;
}

export interface PostgresModule {
  (url: string | undefined, options: Record<string, unknown>): PostgresJsSqlLike;
  (options: Record<string, unknown>): PostgresJsSqlLike;
}

export const poolOptionKeys = ['max', 'acquireTimeoutMillis', 'idle_timeout', 'connect_timeout'] as const;

/** postgres.js's own codes for a connection that is gone (its errors carry them in `code`). */
const lostCodes = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
]);

/** Classifies a postgres.js error: its connection codes, then the PostgreSQL table. */
export function classifyPostgresJsError(error: unknown): ErrorKind {
  if (error !== null && typeof error === 'object') {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && lostCodes.has(code)) return 'connection_lost';
  }
  return classifyPostgresError(error);
}

export const isLost = (error: unknown): boolean => classifyPostgresJsError(error) === 'connection_lost';

export function isSql(value: PostgresJsOptions | PostgresJsSqlLike): value is PostgresJsSqlLike {
  return (
    typeof value === 'function' &&
    typeof (value as PostgresJsSqlLike).reserve === 'function' &&
    typeof (value as PostgresJsSqlLike).unsafe === 'function'
  );
}

export function labelOfOptions(options: PostgresJsOptions): string {
  if (typeof options.url === 'string') return labelOfUrl(options.url, 'postgres');
  return labelOfParts(options.database ?? 'postgres', options.host ?? 'localhost', options.port);
}

export function labelOfSql(options: PostgresJsParsedOptions): string {
  if (options.path) return `${options.database}@${options.path}`;
  return labelOfParts(options.database, options.host[0] ?? 'localhost', options.port[0]);
}
