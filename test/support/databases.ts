import { randomBytes } from 'node:crypto';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import pg from 'pg';
import { inject } from 'vitest';
import { redactUrl } from './redact.js';

export { redactUrl };

/** A database of its own for one test file, so files can run in parallel against one server. */
export interface FreshDatabase {
  /** Same credentials and host as the admin URL, with this database's name. */
  url: string;
  name: string;
  /** Disconnects whatever is still connected to it and drops it; safe to call twice. */
  drop(): Promise<void>;
}

const ADMIN_CONNECT_TIMEOUT_MS = 10_000;

export async function freshPgDatabase(): Promise<FreshDatabase> {
  const adminUrl = inject('pgUrl');
  const name = uniqueName();
  await withPgAdmin(adminUrl, `create database ${name}`, async (client) => {
    await client.query(`CREATE DATABASE "${name}"`);
  });
  return {
    url: withDatabaseName(adminUrl, name),
    name,
    drop: once(() =>
      withPgAdmin(adminUrl, `drop database ${name}`, async (client) => {
        // WITH (FORCE) (PostgreSQL 13+) terminates backends itself; terminating them first as
        // well keeps a drop working even when a backend is slow to notice.
        await client.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      }),
    ),
  };
}

/** Null when the run has no MySQL/MariaDB server (see the global setup's notice). */
export async function freshMysqlDatabase(): Promise<FreshDatabase | null> {
  const adminUrl = inject('mysqlUrl');
  if (adminUrl === null) return null;
  const name = uniqueName();
  await withMysqlAdmin(adminUrl, `create database ${name}`, async (connection) => {
    await connection.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  });
  return {
    url: withDatabaseName(adminUrl, name),
    name,
    drop: once(() =>
      withMysqlAdmin(adminUrl, `drop database ${name}`, async (connection) => {
        // An open transaction elsewhere holds a metadata lock that would make DROP wait forever.
        const [rows] = await connection.query<ProcessRow[]>(
          'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
          [name],
        );
        for (const row of rows) {
          await connection.query(`KILL CONNECTION ${Number(row.id)}`).catch(ignoreUnknownThread);
        }
        await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      }),
    ),
  };
}

interface ProcessRow extends RowDataPacket {
  id: number;
}

// Lower-case hex only: valid unquoted in both dialects and never needs escaping.
function uniqueName(): string {
  return `txscope_t_${randomBytes(6).toString('hex')}`;
}

function withDatabaseName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.href;
}

async function withPgAdmin(
  adminUrl: string,
  action: string,
  fn: (client: pg.Client) => Promise<void>,
): Promise<void> {
  const client = new pg.Client({
    connectionString: adminUrl,
    connectionTimeoutMillis: ADMIN_CONNECT_TIMEOUT_MS,
  });
  try {
    await client.connect();
    await fn(client);
  } catch (err) {
    throw new Error(`could not ${action} on PostgreSQL at ${redactUrl(adminUrl)}`, { cause: err });
  } finally {
    await client.end().catch(() => {});
  }
}

async function withMysqlAdmin(
  adminUrl: string,
  action: string,
  fn: (connection: mysql.Connection) => Promise<void>,
): Promise<void> {
  let connection: mysql.Connection | undefined;
  try {
    connection = await mysql.createConnection({ uri: adminUrl, connectTimeout: ADMIN_CONNECT_TIMEOUT_MS });
    await fn(connection);
  } catch (err) {
    throw new Error(`could not ${action} on MySQL at ${redactUrl(adminUrl)}`, { cause: err });
  } finally {
    await connection?.end().catch(() => {});
  }
}

// The connection may have ended between listing and killing it (ER_NO_SUCH_THREAD).
function ignoreUnknownThread(err: unknown): void {
  if (err instanceof Error && 'errno' in err && err.errno === 1094) return;
  throw err;
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= fn().catch((err: unknown) => {
      // A failed drop may be retried.
      done = undefined;
      throw err;
    });
    return done;
  };
}
