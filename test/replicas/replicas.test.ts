/**
 * Rule 20 (read replicas) on a real streaming replica: a private primary and two hot standbys
 * built for this file (test/support/replica-cluster.ts), one of them delayed by
 * `recovery_min_apply_delay`. Every assertion on routing is what the server said from inside
 * (`pg_is_in_recovery()`, `inet_server_port()`), and read-your-writes is shown by rows a standby
 * does not have yet.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createDatabase, type Database, type QueryEvent, type RouteEvent } from 'txscope';
import { pg } from 'txscope/pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildExample, root } from '../support/example-app.js';
import { missingReplicaTools, type ReplicaCluster, startReplicaCluster } from '../support/replica-cluster.js';

const missing = missingReplicaTools();
if (missing !== null) {
  const notice = `read-replica tests cannot build a PostgreSQL replica: ${missing}`;
  if (process.env.CI === 'true')
    throw new Error(`${notice} (CI=true requires them; .ci/run installs postgresql-15)`);
  process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPED: ${notice}\n${'!'.repeat(78)}\n\n`);
}

const APPLY_DELAY_MS = 2500;
const where = 'select pg_is_in_recovery() as standby, inet_server_port() as port';

interface Served {
  standby: boolean;
  port: number;
}

let cluster: ReplicaCluster;
let primaryUrl: string;
const opened: Database[] = [];

function database(replicaUrls: string[], maxReplicaLagMs?: number): Database {
  const db = createDatabase({
    driver: pg({ connectionString: primaryUrl, max: 4 }),
    replicas: replicaUrls.map((url) => pg({ connectionString: url, max: 4 })),
    ...(maxReplicaLagMs === undefined ? {} : { maxReplicaLagMs }),
  });
  opened.push(db);
  return db;
}

/** A password the servers ignore (trust), so that its absence from stats and events means something. */
function withPassword(url: string): string {
  return url.replace('postgres@', 'postgres:s3cret-pw@');
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function servedBy(db: Database): Promise<Served> {
  const { rows } = await db.query<Served>(where);
  return rows[0] as Served;
}

/** Where a read-only transaction ran, and whether it saw the row `id`. */
function readOnly(db: Database, id?: number): Promise<Served & { seen: boolean }> {
  return db.transaction(
    async () => {
      const at = await servedBy(db);
      if (id === undefined) return { ...at, seen: false };
      const { rows } = await db.query<{ n: number }>('select count(*)::int as n from items where id = $1', [
        id,
      ]);
      return { ...at, seen: rows[0]?.n === 1 };
    },
    { readOnly: true },
  );
}

/** A fresh scope, outside the caller's: it has written nothing. */
function freshScope<T>(db: Database, fn: () => Promise<T>): Promise<T> {
  return db.detached(() => db.scope(fn));
}

/** Until a read-only transaction lands on the replica at `port` (the first probe has run). */
function warm(db: Database, port: number): Promise<Served> {
  return until(`a read-only transaction on the replica at port ${port}`, async () => {
    const at = await readOnly(db);
    return at.standby && at.port === port ? at : undefined;
  });
}

let nextId = 1;

describe.skipIf(missing !== null)('read replicas (rule 20) on a real streaming replica', () => {
  beforeAll(async () => {
    cluster = await startReplicaCluster([{}, { applyDelayMs: APPLY_DELAY_MS }]);
    primaryUrl = withPassword(cluster.primary.url);
    const setup = createDatabase({ driver: pg({ connectionString: primaryUrl }) });
    await setup.query('create table items (id int primary key, note text)');
    await setup.close();
    // The delayed standby has the table only once it has replayed its creation.
    for (const standby of cluster.standbys) {
      const direct = createDatabase({ driver: pg({ connectionString: standby.url, max: 1 }) });
      await until('the table on every standby', async () => {
        const { rows } = await direct.query<{ ok: boolean }>("select to_regclass('items') is not null as ok");
        return rows[0]?.ok;
      });
      await direct.close();
    }
  }, 120_000);

  afterAll(async () => {
    for (const db of opened) await db.close().catch(() => {});
    await cluster?.destroy();
  }, 60_000);

  test('read-only transactions run on a replica; autocommit, read-write and frames inside a write transaction on the primary', async () => {
    const [fast] = cluster.standbys as [ReplicaCluster['standbys'][0]];
    const db = database([withPassword(fast.url)]);
    await warm(db, fast.port);
    const primary = cluster.primary.port;

    expect(await readOnly(db)).toMatchObject({ standby: true, port: fast.port });
    expect(await servedBy(db)).toEqual({ standby: false, port: primary });
    expect(await db.transaction(() => servedBy(db))).toEqual({ standby: false, port: primary });
    // A read-only frame inside a write transaction is that transaction's (nested: its savepoint;
    // requires_new: a second transaction, still on the primary).
    const inner = await db.transaction(async () => {
      await db.query('select 1');
      return {
        nested: await db.transaction(() => servedBy(db), { propagation: 'nested', readOnly: true }),
        requiresNew: await db.transaction(() => servedBy(db), {
          propagation: 'requires_new',
          readOnly: true,
        }),
      };
    });
    expect(inner).toEqual({
      nested: { standby: false, port: primary },
      requiresNew: { standby: false, port: primary },
    });
    // A write in a read-only transaction fails with the database's own error (on the standby:
    // 25006, cannot execute INSERT in a read-only transaction).
    const write = db.transaction(() => db.query("insert into items values (-1, 'x')"), { readOnly: true });
    await expect(write).rejects.toMatchObject({ code: '25006' });
  });

  test('db.stats() and txscope:route say which target served, never with a password', async () => {
    const [fast] = cluster.standbys as [ReplicaCluster['standbys'][0]];
    const db = database([withPassword(fast.url)]);
    await warm(db, fast.port);
    const events: RouteEvent[] = [];
    const listener = (message: unknown): void => void events.push(message as RouteEvent);
    diagnostics.subscribe('txscope:route', listener);
    const queries: QueryEvent[] = [];
    const onQuery = (message: unknown): void => void queries.push(message as QueryEvent);
    diagnostics.subscribe('txscope:query', onQuery);
    const before = db.stats().targets ?? [];
    try {
      for (let i = 0; i < 3; i++) await readOnly(db);
      await db.query('select 1');
    } finally {
      diagnostics.unsubscribe('txscope:route', listener);
      diagnostics.unsubscribe('txscope:query', onQuery);
    }
    const after = db.stats().targets ?? [];
    expect(after.map((t) => [t.label, t.role])).toEqual([
      ['primary', 'primary'],
      [`test@127.0.0.1:${fast.port}`, 'replica'],
    ]);
    const [primaryBefore, replicaBefore] = before as [(typeof after)[0], (typeof after)[0]];
    const [primaryAfter, replicaAfter] = after as [(typeof after)[0], (typeof after)[0]];
    // Each read-only transaction: BEGIN, its statement, COMMIT on the replica; one autocommit statement on the primary.
    expect(replicaAfter.transactions - replicaBefore.transactions).toBe(3);
    expect(replicaAfter.statements - replicaBefore.statements).toBe(3 * 3);
    expect(primaryAfter.statements - primaryBefore.statements).toBe(1);
    expect(replicaAfter.health).toBe('healthy');
    expect(events.map((e) => [e.target, e.reason])).toEqual(
      Array.from({ length: 3 }, () => [`test@127.0.0.1:${fast.port}`, 'replica']),
    );
    // Each statement's event names its target: 3 x (BEGIN, the statement, COMMIT) on the replica, then one on the primary.
    const label = `test@127.0.0.1:${fast.port}`;
    expect(queries.map((q) => q.target)).toEqual([...Array.from({ length: 9 }, () => label), 'primary']);
    expect(queries.slice(0, 9).map((q) => q.transactionId)).toEqual(
      events.flatMap((e) => Array.from({ length: 3 }, () => e.transactionId)),
    );
    expect(JSON.stringify([after, events, queries])).not.toContain('s3cret');
  });

  test('read-your-writes in a scope: a delayed replica serves it only once it has replayed the write', async () => {
    const slow = cluster.standbys[1] as ReplicaCluster['standbys'][0];
    // Lag never excludes it here: what keeps the scope's reads off it is the position.
    const db = database([slow.url], 600_000);
    await warm(db, slow.port);
    const id = nextId++;
    await db.scope(async () => {
      await db.transaction(() => db.query("insert into items values ($1, 'tx')", [id]));
      // Another scope has written nothing: the replica serves it, without the row (it is delayed).
      expect(await freshScope(db, () => readOnly(db, id))).toMatchObject({ standby: true, seen: false });
      // This scope wrote: its read goes to the primary, which has the row.
      expect(await readOnly(db, id)).toMatchObject({ standby: false, seen: true });
      await until(
        'the delayed replica to replay the write',
        async () => (await freshScope(db, () => readOnly(db, id))).seen,
      );
      expect(await readOnly(db, id)).toMatchObject({ standby: true, port: slow.port, seen: true });

      // An autocommit write counts too: its position is the primary's when the scope next reads.
      const second = nextId++;
      await db.query("insert into items values ($1, 'autocommit')", [second]);
      expect(await readOnly(db, second)).toMatchObject({ standby: false, seen: true });
    });
  });

  test('a replica lagging more than maxReplicaLagMs is skipped until it catches up', async () => {
    const [fast, slow] = cluster.standbys as [ReplicaCluster['standbys'][0], ReplicaCluster['standbys'][0]];
    const db = database([fast.url, slow.url], 300);
    await warm(db, fast.port);
    const writer = createDatabase({ driver: pg({ connectionString: primaryUrl, max: 1 }) });
    opened.push(writer);
    let writing = true;
    const writes = (async () => {
      while (writing) {
        await writer.query("insert into items values ($1, 'load')", [nextId++]);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    try {
      await until('the delayed replica to be seen lagging', async () => {
        const [, fastStats, slowStats] = db.stats().targets ?? [];
        return slowStats?.health === 'lagging' && fastStats?.health === 'healthy';
      });
      const ports: number[] = [];
      for (let i = 0; i < 12; i++) ports.push((await freshScope(db, () => readOnly(db))).port);
      expect(new Set(ports)).toEqual(new Set([fast.port]));
    } finally {
      writing = false;
      await writes;
    }
    // Once it has replayed everything it is used again.
    await until(
      'the delayed replica to serve again',
      async () => (await readOnly(db)).port === slow.port,
      30_000,
    );
  });

  test('a stopped replica is skipped with no error to callers, and used again once it is back', async () => {
    const [fast] = cluster.standbys as [ReplicaCluster['standbys'][0]];
    const db = database([fast.url]);
    await warm(db, fast.port);
    const primary = cluster.primary.port;
    // Lost in the middle of a read-only transaction: rule 14, ERR_CONNECTION_LOST...
    const lost = db.transaction(
      async () => {
        expect((await servedBy(db)).port).toBe(fast.port);
        await fast.stop();
        return servedBy(db);
      },
      { readOnly: true },
    );
    await expect(lost).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    await fast.start();
    await warm(db, fast.port);
    // ...or, with retry, a re-run on another target: it wrote nothing.
    let attempts = 0;
    const rerun = await db.transaction(
      async () => {
        attempts++;
        const first = await servedBy(db);
        if (attempts === 1) {
          expect(first.port).toBe(fast.port);
          await fast.stop();
        }
        return servedBy(db);
      },
      { readOnly: true, retry: { attempts: 2, baseDelayMs: 1 } },
    );
    expect({ attempts, rerun }).toEqual({ attempts: 2, rerun: { standby: false, port: primary } });
    try {
      const served: Served[] = [];
      for (let i = 0; i < 10; i++) served.push(await readOnly(db));
      expect(served.every((at) => !at.standby && at.port === primary)).toBe(true);
      expect(db.stats().targets?.[1]?.health).toBe('down');
    } finally {
      await fast.start();
    }
    await until(
      'the restarted replica to serve again',
      async () => (await readOnly(db)).port === fast.port,
      30_000,
    );
    expect(db.stats().targets?.[1]?.health).toBe('healthy');
  });

  test('read-your-writes across two requests served by two processes (readYourWrites cookie)', async () => {
    await buildExample();
    const slow = cluster.standbys[1] as ReplicaCluster['standbys'][0];
    const [a, b] = await Promise.all([startApp(slow.url), startApp(slow.url)]);
    try {
      const read = async (id: number, cookie?: string) => {
        const res = await fetch(
          `${b.url}/read?id=${id}`,
          cookie === undefined ? {} : { headers: { cookie } },
        );
        return (await res.json()) as Served & { seen: boolean };
      };
      await until('process B to read from the replica', async () => (await read(0)).standby);
      const id = nextId++;
      const written = await fetch(`${a.url}/write?id=${id}`, { method: 'POST' });
      expect(written.status).toBe(200);
      const setCookie = written.headers.get('set-cookie') ?? '';
      expect(setCookie).toMatch(
        /^txscope-position=[0-9A-F]+%2F[0-9A-F]+; Max-Age=10; Path=\/; HttpOnly; SameSite=Lax$/,
      );
      const cookie = setCookie.split(';')[0] as string;
      // Without the cookie, process B reads the delayed replica, which lacks the row; with it, the primary.
      expect(await read(id)).toMatchObject({ standby: true, seen: false });
      expect(await read(id, cookie)).toMatchObject({ standby: false, seen: true });
      await until('the delayed replica to replay the write', async () => (await read(id)).seen);
      expect(await read(id, cookie)).toMatchObject({ standby: true, seen: true });
    } finally {
      a.child.kill();
      b.child.kill();
    }
  }, 240_000);
});

const appScript = fileURLToPath(new URL('./replica-app.mjs', import.meta.url));

async function startApp(replicaUrl: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [appScript], {
    cwd: root,
    env: { ...process.env, PRIMARY_URL: primaryUrl, REPLICA_URL: replicaUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NonNullable<typeof child.stdout> });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`replica-app exited with ${code}`)));
    lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}
