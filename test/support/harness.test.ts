import mysql, { type RowDataPacket } from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FreshDatabase, freshMysqlDatabase, freshPgDatabase, redactUrl } from './databases.js';

// Proves the test infrastructure itself, so a failure elsewhere is about txscope, not the setup.

const mysqlUrl = inject('mysqlUrl');

describe('fresh PostgreSQL database', () => {
  let db: FreshDatabase;

  beforeAll(async () => {
    db = await freshPgDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('round-trips rows in its own database', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query('CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL)');
      await client.query('INSERT INTO item (id, label) VALUES ($1, $2), ($3, $4)', [
        1,
        'plain',
        2,
        'ünïcødé',
      ]);
      const { rows } = await client.query<{ id: number; label: string }>(
        'SELECT id, label FROM item ORDER BY id',
      );
      expect(rows).toEqual([
        { id: 1, label: 'plain' },
        { id: 2, label: 'ünïcødé' },
      ]);
      const { rows: meta } = await client.query<{ db: string; version: number }>(
        "SELECT current_database() AS db, current_setting('server_version_num')::int AS version",
      );
      expect(meta[0]?.db).toBe(db.name);
      // drop() relies on DROP DATABASE ... WITH (FORCE).
      expect(meta[0]?.version).toBeGreaterThanOrEqual(130000);
    } finally {
      await client.end();
    }
  });

  it('drop() removes a database that still has a connection open', async () => {
    const other = await freshPgDatabase();
    const lingering = new pg.Client({ connectionString: other.url });
    // The server terminates this connection; that must not crash the test process.
    lingering.on('error', () => {});
    await lingering.connect();
    await other.drop();
    await other.drop();

    const admin = new pg.Client({ connectionString: inject('pgUrl') });
    await admin.connect();
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [other.name]);
      expect(rowCount).toBe(0);
    } finally {
      await admin.end();
      await lingering.end().catch(() => {});
    }
  });
});

describe.skipIf(!mysqlUrl)('fresh MySQL/MariaDB database', () => {
  let db: FreshDatabase;

  beforeAll(async () => {
    const fresh = await freshMysqlDatabase();
    if (fresh === null) throw new Error('mysqlUrl is provided but freshMysqlDatabase() returned null');
    db = fresh;
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('round-trips rows in its own database', async () => {
    const connection = await mysql.createConnection({ uri: db.url });
    try {
      await connection.query('CREATE TABLE item (id int PRIMARY KEY, label varchar(50) NOT NULL)');
      await connection.query('INSERT INTO item (id, label) VALUES (?, ?), (?, ?)', [
        1,
        'plain',
        2,
        'ünïcødé',
      ]);
      const [rows] = await connection.query<RowDataPacket[]>('SELECT id, label FROM item ORDER BY id');
      expect(rows.map((row) => ({ ...row }))).toEqual([
        { id: 1, label: 'plain' },
        { id: 2, label: 'ünïcødé' },
      ]);
      const [meta] = await connection.query<RowDataPacket[]>('SELECT DATABASE() AS db');
      expect(meta[0]?.db).toBe(db.name);
    } finally {
      await connection.end();
    }
  });

  it('drop() removes a database that has an open transaction on it', async () => {
    const other = await freshMysqlDatabase();
    if (other === null) throw new Error('unreachable: mysqlUrl is provided');
    const lingering = await mysql.createConnection({ uri: other.url });
    lingering.on('error', () => {});
    await lingering.query('CREATE TABLE t (id int PRIMARY KEY) ENGINE=InnoDB');
    await lingering.beginTransaction();
    await lingering.query('INSERT INTO t VALUES (1)');
    await other.drop();

    const admin = await mysql.createConnection({ uri: mysqlUrl ?? '' });
    try {
      const [rows] = await admin.query<RowDataPacket[]>(
        'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
        [other.name],
      );
      expect(rows).toEqual([]);
    } finally {
      await admin.end();
      lingering.destroy();
    }
  });
});

describe('redactUrl', () => {
  it('masks the password and keeps user, host, port and database', () => {
    const redacted = redactUrl('postgres://u:secret@h/db');
    expect(redacted).not.toContain('secret');
    expect(redacted).toBe('postgres://u:***@h/db');
    expect(redactUrl('mysql://root:pw@127.0.0.1:3306/test')).toBe('mysql://root:***@127.0.0.1:3306/test');
  });

  it('leaves a URL without a password unchanged', () => {
    expect(redactUrl('postgres://postgres@127.0.0.1:5432/test')).toBe(
      'postgres://postgres@127.0.0.1:5432/test',
    );
  });

  it('masks percent-encoded passwords and password query parameters', () => {
    const redacted = redactUrl('postgres://u:s%40cr%3At@h:5433/db?password=secret2&sslmode=disable');
    expect(redacted).not.toMatch(/s%40cr|secret2/);
    expect(redacted).toBe('postgres://u:***@h:5433/db?password=***&sslmode=disable');
  });

  it('masks secrets in strings that are not URLs', () => {
    const redacted = redactUrl('host=h user=u password=secret dbname=db');
    expect(redacted).not.toContain('secret');
    expect(redacted).toContain('user=u');
  });
});
