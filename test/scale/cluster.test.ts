/**
 * Rule 21 with many processes: 4 node:cluster workers of an Express app (test/scale/cluster-app.mjs)
 * on one database, directly and through PgBouncer in transaction mode, transfer money between a
 * few shared accounts at SERIALIZABLE with retry. What the database holds afterwards is checked
 * from a connection of the test's own: the total is conserved, every transfer answered 200 is in
 * the table exactly once (and no other), no worker has a connection checked out, and through
 * PgBouncer the server never saw more connections than PgBouncer's pool.
 *
 * TXSCOPE_CLUSTER_TRANSFERS sets the count per mode (default and CI: 1,000; the full run:
 * TXSCOPE_CLUSTER_TRANSFERS=20000 npx vitest run test/scale/cluster.test.ts).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pgLib from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FreshDatabase, freshPgDatabase } from '../support/databases.js';
import { buildExample } from '../support/example-app.js';
import { runPgBouncer, throughPgBouncer } from '../support/pooler.js';

const TRANSFERS = Number(process.env.TXSCOPE_CLUSTER_TRANSFERS ?? 1000);
const WORKERS = 4;
const POOL_MAX = 5;
const ACCOUNTS = 50;
const OPENING_BALANCE = 1_000_000;
/** Requests in flight at once, over keep-alive connections. */
const CONCURRENCY = 32;
/** Generous: a 2-core machine shared with other runs; the per-mode time is printed. */
const TIMEOUT_MS = Math.max(120_000, TRANSFERS * 30);

const app = fileURLToPath(new URL('./cluster-app.mjs', import.meta.url));

interface Figures {
  mode: string;
  transfers: number;
  committed: number;
  failed: Record<string, number>;
  retried: number;
  total: number;
  serverConnectionsPeak: number;
  seconds: number;
}

const children: ChildProcessWithoutNullStreams[] = [];

beforeAll(async () => {
  // The workers run the built library, as an application would.
  await buildExample();
}, 240_000);

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

const modes = [
  { mode: 'direct', url: (fresh: FreshDatabase) => fresh.url, available: true },
  {
    mode: 'pgbouncer',
    url: (fresh: FreshDatabase) => throughPgBouncer(fresh.url),
    available: runPgBouncer() !== null,
  },
] as const;

describe('many processes on one database', () => {
  for (const { mode, url, available } of modes) {
    it.runIf(available)(
      `${WORKERS} cluster workers, ${TRANSFERS} SERIALIZABLE transfers with retry [${mode}]`,
      async () => {
        const fresh = await freshPgDatabase();
        const admin = new pgLib.Client({ connectionString: fresh.url });
        await admin.connect();
        try {
          const figures = await run({ mode, fresh, admin, url: url(fresh) });
          process.stdout.write(`[cluster] ${JSON.stringify(figures)}\n`);
          expect(figures.total).toBe(ACCOUNTS * OPENING_BALANCE);
          expect(figures.failed).toEqual({});
          expect(figures.committed).toBe(TRANSFERS);
          if (mode === 'pgbouncer') {
            const poolSize = runPgBouncer()?.poolSize ?? 0;
            expect(figures.serverConnectionsPeak).toBeLessThanOrEqual(poolSize);
          } else {
            expect(figures.serverConnectionsPeak).toBeLessThanOrEqual(WORKERS * POOL_MAX);
          }
        } finally {
          await admin.end();
          await fresh.drop();
        }
      },
      TIMEOUT_MS,
    );
  }
});

async function run(options: {
  mode: string;
  fresh: FreshDatabase;
  admin: pgLib.Client;
  url: string;
}): Promise<Figures> {
  const { admin, fresh } = options;
  await admin.query('create table accounts (id int primary key, balance bigint not null)');
  await admin.query(
    'create table transfers (id int primary key, src int not null, dst int not null, amount int not null, worker int not null)',
  );
  await admin.query('insert into accounts select i, $1 from generate_series(1, $2) as i', [
    OPENING_BALANCE,
    ACCOUNTS,
  ]);

  const child = spawn(process.execPath, [app], {
    env: { ...process.env, DATABASE_URL: options.url, WORKERS: String(WORKERS), POOL_MAX: String(POOL_MAX) },
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const line = await Promise.race([
      lines.next(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`the cluster app said nothing in 60 s: ${stderr}`)), 60_000),
      ),
    ]);
    if (line.done) throw new Error(`the cluster app exited: ${stderr}`);
    return JSON.parse(line.value) as Record<string, unknown>;
  };
  const { ready: port } = (await next()) as { ready: number };

  // Server connections of this database, seen from the server, all run long.
  let peak = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const { rows } = await admin.query<{ n: number }>(
        'select count(*)::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
        [fresh.name],
      );
      peak = Math.max(peak, rows[0]?.n ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();

  const started = performance.now();
  const committed: number[] = [];
  const failed: Record<string, number> = {};
  let retried = 0;
  let issued = 0;
  const client = async () => {
    while (issued < TRANSFERS) {
      const id = ++issued;
      const from = 1 + Math.floor(Math.random() * ACCOUNTS);
      const to = 1 + ((from + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS);
      const response = await fetch(`http://127.0.0.1:${port}/transfer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id, from, to, amount: 1 + Math.floor(Math.random() * 100) }),
      });
      const body = (await response.json()) as { attempts: number; code?: string };
      retried += Math.max(0, body.attempts - 1);
      if (response.status === 200) committed.push(id);
      else failed[String(body.code)] = (failed[String(body.code)] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  const seconds = (performance.now() - started) / 1000;

  child.stdin.write('stats\n');
  const { stats } = (await next()) as { stats: Array<{ checkedOut: number; activeTransactions: number }> };
  watching = false;
  await watcher;
  expect(stats).toHaveLength(WORKERS);
  for (const worker of stats) {
    expect(worker.checkedOut).toBe(0);
    expect(worker.activeTransactions).toBe(0);
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
  expect(stderr).toBe('');

  // Every transfer answered 200 is in the table once, and nothing else is.
  const { rows } = await admin.query<{ id: number }>('select id from transfers order by id');
  expect(rows.map((r) => r.id)).toEqual(committed.sort((a, b) => a - b));
  const { rows: sum } = await admin.query<{ total: string }>('select sum(balance) as total from accounts');
  return {
    mode: options.mode,
    transfers: TRANSFERS,
    committed: committed.length,
    failed,
    retried,
    total: Number(sum[0]?.total),
    serverConnectionsPeak: peak,
    seconds: Math.round(seconds * 10) / 10,
  };
}
