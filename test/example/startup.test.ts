/**
 * Every way `npm start` can fail to start ends with one message that says what to do, exit code 1,
 * and nothing left running; the embedded PostgreSQL behind it (and behind the test setup) starts
 * from wherever the checkout is, as root or not.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EmbeddedPostgresError, startEmbeddedPostgres } from '../../examples/user-service/src/embedded.js';
import { startEmbeddedPostgres as startTestSetupPostgres } from '../setup/embedded-postgres.js';
import {
  buildExample,
  type Exited,
  freePort,
  portIsFree,
  postgresLeftOn,
  runExampleToExit,
  startExample,
  stopStrayExamples,
} from '../support/example-app.js';

const isRoot = process.getuid?.() === 0;
const scratch = mkdtempSync(join(tmpdir(), 'txscope-startup-'));
// The test's own fresh directory, not a user's: as root, the postgres user must enter it for the
// data directories below to be used where they are.
chmodSync(scratch, 0o755);
let dirs = 0;
const freshDir = () => join(scratch, `data-${++dirs}`);

/** One message, no stack trace, no unhandled 'error' event. */
function expectOneClearFailure(run: Exited, ...wanted: Array<string | RegExp>): void {
  const output = run.stdout + run.stderr;
  expect(run.code, output).toBe(1);
  expect(run.stderr).toContain('the txscope example did not start: ');
  for (const text of wanted) {
    if (typeof text === 'string') expect(run.stderr).toContain(text);
    else expect(run.stderr).toMatch(text);
  }
  expect(output).not.toMatch(/^\s+at /m);
  expect(output).not.toContain("Unhandled 'error' event");
  expect(output).not.toContain('node:internal');
}

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

beforeAll(() => buildExample(), 180_000);

afterAll(async () => {
  await stopStrayExamples();
  rmSync(scratch, { recursive: true, force: true });
});

describe('npm start: startup failures', () => {
  it('a port in use: names it and says PORT= picks another; no database is started', async () => {
    const port = await freePort();
    const holder = await listenOn(port);
    const dataDir = freshDir();
    try {
      const run = await runExampleToExit({ PORT: String(port), DATA_DIR: dataDir });
      expectOneClearFailure(run, `port ${port} on 127.0.0.1 is already in use`, `PORT=${port + 1} npm start`);
    } finally {
      await new Promise((closed) => holder.close(closed));
    }
    // It fails before starting PostgreSQL, so there is nothing to stop.
    expect(existsSync(join(dataDir, 'PG_VERSION'))).toBe(false);
    expect(await postgresLeftOn(dataDir)).toEqual([]);
  });

  it('a DATABASE_URL nothing answers: the URL without its password, the cause, what to check', async () => {
    const [databasePort, port] = [await freePort(), await freePort()];
    const url = `postgres://app:s3cret-pw@127.0.0.1:${databasePort}/app`;
    const run = await runExampleToExit({ DATABASE_URL: url, PORT: String(port) });
    expectOneClearFailure(
      run,
      `DATABASE_URL=postgres://app:***@127.0.0.1:${databasePort}/app`,
      'ECONNREFUSED',
      'check that the server is running',
      'unset DATABASE_URL',
    );
    expect(run.stdout + run.stderr).not.toContain('s3cret-pw');
    expect(await portIsFree(port)).toBe(true);
  });

  it('a DATABASE_URL whose database does not exist: says so and how to create it', async () => {
    const url = new URL(inject('pgUrl'));
    url.pathname = '/txscope_no_such_database';
    const port = await freePort();
    const run = await runExampleToExit({ DATABASE_URL: url.href, PORT: String(port) });
    expectOneClearFailure(run, 'database "txscope_no_such_database" does not exist', 'createdb');
    expect(await portIsFree(port)).toBe(true);
  });

  it('an embedded PostgreSQL that exits at start: why, and where its log is', async () => {
    // A damaged cluster: its version file survived, its configuration did not.
    const dataDir = freshDir();
    mkdirSync(dataDir, { mode: 0o700 });
    writeFileSync(join(dataDir, 'PG_VERSION'), '17\n');
    if (isRoot) execFileSync('chown', ['-R', 'postgres:', dataDir]);
    const port = await freePort();
    const run = await runExampleToExit({ DATA_DIR: dataDir, PORT: String(port) });
    expectOneClearFailure(
      run,
      'the embedded PostgreSQL did not start: postgres exited',
      `could not access the server configuration file "${dataDir}/postgresql.conf"`,
      `its log: ${dataDir}.log`,
    );
    expect(existsSync(`${dataDir}.log`)).toBe(true);
    expect(await postgresLeftOn(dataDir)).toEqual([]);
    expect(await portIsFree(port)).toBe(true);
  });

  it('a data directory another running example holds: refused, and the other one is left alone', async () => {
    const dataDir = freshDir();
    const first = await startExample({ DATA_DIR: dataDir, PORT: '0' });
    try {
      const port = await freePort();
      const second = await runExampleToExit({ DATA_DIR: dataDir, PORT: String(port) });
      expectOneClearFailure(
        second,
        'FATAL: lock file "postmaster.pid" already exists',
        /HINT: Is another postmaster \(PID \d+\) running in data directory/,
        `its log: ${dataDir}.log`,
      );
      expect(await portIsFree(port)).toBe(true);
      const health = await fetch(`${first.url}/users/1`);
      expect(health.status).toBe(404);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    expect(await postgresLeftOn(dataDir)).toEqual([]);
  }, 60_000);
});

describe.skipIf(!isRoot)('npm start as root, in a directory the postgres user cannot enter', () => {
  it('keeps the data in one stable place outside, says where, and uses it again on the next start', async () => {
    const privateDir = mkdtempSync(join(scratch, 'private-'));
    expect(statSync(privateDir).mode & 0o777).toBe(0o700);
    const dataDir = join(privateDir, 'example-data');
    const whereData = /data in (\/\S+), log in \S+\.log/;

    const first = await startExample({ DATA_DIR: dataDir, PORT: '0' });
    const moved = whereData.exec(first.output())?.[1];
    try {
      expect(moved, first.output()).toMatch(/^\/(var\/)?tmp\/txscope-postgres\/example-data-[0-9a-f]{12}$/);
      expect(first.output()).toContain(`who cannot enter ${privateDir} (mode 0700)`);
      const created = await fetch(`${first.url}/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'kept@example.com', name: 'Kept' }),
      });
      expect(created.status).toBe(201);
      expect(await first.stop()).toBe(0);

      const second = await startExample({ DATA_DIR: dataDir, PORT: '0' });
      try {
        expect(whereData.exec(second.output())?.[1]).toBe(moved);
        const read = await fetch(`${second.url}/users/1`);
        expect(await read.json()).toMatchObject({ email: 'kept@example.com' });
      } finally {
        expect(await second.stop()).toBe(0);
      }
      // Its own directory stays as it was: nothing was loosened to make room for the postgres user.
      expect(statSync(privateDir).mode & 0o777).toBe(0o700);
      expect(existsSync(dataDir)).toBe(false);
      expect(await postgresLeftOn(moved as string)).toEqual([]);
    } finally {
      await stopStrayExamples();
      if (moved !== undefined) {
        rmSync(moved, { recursive: true, force: true });
        rmSync(`${moved}.log`, { force: true });
      }
    }
  }, 90_000);
});

describe('embedded PostgreSQL', () => {
  it("the test setup's starts, answers and leaves nothing behind when stopped", async () => {
    const server = await startTestSetupPostgres();
    let dataDir: string;
    try {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      const { rows } = await client.query<{ db: string; encoding: string }>(
        "select current_database() as db, pg_encoding_to_char(encoding) as encoding from pg_database where datname = 'test'",
      );
      await client.end();
      expect(rows).toEqual([{ db: 'test', encoding: 'UTF8' }]);
      dataDir = server.dataDir;
    } finally {
      await server.stop();
    }
    expect(await postgresLeftOn(dataDir)).toEqual([]);
    expect(existsSync(dataDir)).toBe(false);
    expect(existsSync(`${dataDir}.log`)).toBe(false);
  });

  it('a server that will not start: the reason from its log, the log kept, nothing running', async () => {
    const dataDir = freshDir();
    const failure = await startEmbeddedPostgres({
      dataDir,
      password: 'pw',
      database: 'app',
      initdbFlags: ['--no-sync'],
      settings: { max_connections: 'plenty' },
    }).then(
      () => new Error('it started'),
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(EmbeddedPostgresError);
    const error = failure as EmbeddedPostgresError;
    expect(error.message).toContain('invalid value for parameter "max_connections": "plenty"');
    expect(error.logFile).toBe(`${dataDir}.log`);
    expect(existsSync(`${dataDir}.log`)).toBe(true);
    expect(await postgresLeftOn(dataDir)).toEqual([]);
  });
});
