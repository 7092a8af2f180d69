import mysql from 'mysql2/promise';
import pg from 'pg';

export type ProbeResult = { ok: true } | { ok: false; reason: string };

// Short enough that a missing server costs the run about two seconds, long enough for a busy one.
const PROBE_TIMEOUT_MS = 2_000;

/** Connects and runs `select 1`: a server that accepts TCP but rejects the login does not count. */
export async function probePostgres(url: string): Promise<ProbeResult> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: PROBE_TIMEOUT_MS,
    query_timeout: PROBE_TIMEOUT_MS,
  });
  // A late socket error after a failed connect would otherwise crash the vitest main process.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: describeError(err) };
  } finally {
    await client.end().catch(() => {});
  }
}

export async function probeMysql(url: string): Promise<ProbeResult> {
  let connection: mysql.Connection | undefined;
  try {
    connection = await mysql.createConnection({ uri: url, connectTimeout: PROBE_TIMEOUT_MS });
    await connection.query('select 1');
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: describeError(err) };
  } finally {
    await connection?.end().catch(() => {});
  }
}

/**
 * Node's happy-eyeballs connect fails with an AggregateError whose message is empty, so the
 * useful part (ECONNREFUSED on each address) has to be dug out of `errors`.
 */
export function describeError(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return [...new Set(err.errors.map(describeError))].join('; ');
  }
  if (err instanceof Error) {
    const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
    if (code !== undefined && !err.message.includes(code)) return `${code}: ${err.message}`;
    return err.message || err.name;
  }
  return String(err);
}
