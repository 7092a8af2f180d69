/**
 * Rule 19 under each way of running tests: vitest workers in parallel (each file its own test
 * transaction), node:test with `withRollback`, and the runner globals of Jest or vitest's
 * `globals: true` for `rollbackAfterEach(db)` without hooks passed in.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pgLib from 'pg';
import { createDatabase, sql } from 'txscope';
import { pg } from 'txscope/pg';
import { rollbackAfterEach } from 'txscope/testing';
import { afterAll, afterEach, aroundEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { buildExample } from '../support/example-app.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const url = inject('pgUrl');
const table = `txscope_t_${randomBytes(6).toString('hex')}`;
const observer = new pgLib.Pool({ connectionString: url, max: 1 });

beforeAll(async () => {
  await observer.query(`create table "${table}" (id serial primary key, tag text not null)`);
});

afterAll(async () => {
  await observer.query(`drop table if exists "${table}"`);
  await observer.end();
});

async function committed(): Promise<number> {
  const { rows } = await observer.query<{ n: number }>(`select count(*)::int as n from "${table}"`);
  return rows[0]?.n ?? -1;
}

it('parallel test files in vitest workers each have their own test transaction, at the same time', async () => {
  const barrier = mkdtempSync(join(tmpdir(), 'txscope-barrier-'));
  try {
    const { stdout } = await run(
      process.execPath,
      [
        join(root, 'node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        'test/testing/fixtures/vitest.config.ts',
      ],
      {
        cwd: root,
        env: {
          ...process.env,
          TXSCOPE_PG_URL: url,
          TXSCOPE_TABLE: table,
          TXSCOPE_BARRIER: barrier,
          TXSCOPE_WORKERS: '3',
          CI: 'true',
          NO_COLOR: '1',
          FORCE_COLOR: '0',
        },
        timeout: 120_000,
      },
    );
    expect(stdout).toMatch(/Test Files\s+3 passed/);
    expect(await committed()).toBe(0);
  } finally {
    rmSync(barrier, { recursive: true, force: true });
  }
}, 150_000);

it('node:test: each test wrapped in withRollback', async () => {
  // The fixture imports the package as users do, so it runs on the build.
  await buildExample();
  const { stdout } = await run(
    process.execPath,
    ['--test', '--test-reporter=tap', 'test/testing/fixtures/node-test.mjs'],
    {
      cwd: root,
      env: { ...process.env, TXSCOPE_PG_URL: url, TXSCOPE_TABLE: table },
      timeout: 60_000,
    },
  );
  expect(stdout).toMatch(/# pass 2/);
  expect(stdout).toMatch(/# fail 0/);
  expect(await committed()).toBe(0);
}, 240_000);

describe('rollbackAfterEach(db, { aroundEach }): each test runs inside the test transaction’s context', () => {
  const db = createDatabase({ driver: pg({ connectionString: url, max: 2 }), strict: true });
  afterAll(() => db.close());
  rollbackAfterEach(db, { aroundEach });
  let late: Promise<unknown> | undefined;
  let release!: () => void;

  it('the test body is in the test transaction, even under strict mode', async () => {
    await db.query(sql`insert into ${sql.id(table)} (tag) values ('around')`);
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    late = gate.then(() => db.query(sql`insert into ${sql.id(table)} (tag) values ('late')`));
    late.catch(() => {});
    expect(await committed()).toBe(0);
  });

  it('a statement the previous test sends after its end rejects, and lands nowhere', async () => {
    release();
    await expect(late).rejects.toMatchObject({ code: 'ERR_TRANSACTION_CLOSED' });
    const { rows } = await db.query<{ n: number }>(sql`select count(*)::int as n from ${sql.id(table)}`);
    expect(rows[0]?.n).toBe(0);
  });
});

describe('rollbackAfterEach(db) with the runner’s globals (Jest, or vitest with globals: true)', () => {
  const db = createDatabase({ driver: pg({ connectionString: url, max: 2 }) });
  afterAll(() => db.close());
  const scope = globalThis as { beforeEach?: unknown; afterEach?: unknown };
  scope.beforeEach = beforeEach;
  scope.afterEach = afterEach;
  try {
    rollbackAfterEach(db);
  } finally {
    delete scope.beforeEach;
    delete scope.afterEach;
  }
  const count = async () =>
    Number((await db.query<{ n: number }>(sql`select count(*)::int as n from ${sql.id(table)}`)).rows[0]?.n);

  it('the first test writes', async () => {
    await db.query(sql`insert into ${sql.id(table)} (tag) values ('globals')`);
    expect(await count()).toBe(1);
    expect(await committed()).toBe(0);
  });

  it('the next one sees nothing of it', async () => {
    expect(await count()).toBe(0);
  });

  it('without globals and without hooks, the error says what to pass', () => {
    expect(() => rollbackAfterEach(db)).toThrow(/pass \{ aroundEach \} or \{ beforeEach, afterEach \}/);
  });
});
