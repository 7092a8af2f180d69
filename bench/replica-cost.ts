/**
 * What read replicas (rule 20) cost per transaction, on a private primary and standby built like
 * the tests' (test/support/replica-cluster.ts). Run from the repository root:
 *
 *   node node_modules/jiti/lib/jiti-cli.mjs bench/replica-cost.ts [iterations]
 *
 * Sequential transactions (one at a time: latency, not throughput), each case run in alternating
 * rounds; prints the median of the rounds' microseconds per transaction.
 */
import { loadavg } from 'node:os';
import { pg } from '../src/exports/pg.js';
import { createDatabase, type Database } from '../src/index.js';
import { startReplicaCluster } from '../test/support/replica-cluster.js';

const iterations = Number(process.argv[2] ?? 1000);
const rounds = 5;

async function main(): Promise<void> {
  const cluster = await startReplicaCluster([{}]);
  const standby = cluster.standbys[0];
  if (standby === undefined) throw new Error('no standby');
  const plain = createDatabase({ driver: pg({ connectionString: cluster.primary.url, max: 4 }) });
  // The standby as a plain database: what its server costs, without txscope's routing.
  const direct = createDatabase({ driver: pg({ connectionString: standby.url, max: 4 }) });
  const replicated = createDatabase({
    driver: pg({ connectionString: cluster.primary.url, max: 4 }),
    replicas: [pg({ connectionString: standby.url, max: 4 })],
  });
  try {
    await plain.query('create table t (id serial primary key, v int)');
    await plain.query('insert into t (v) select g from generate_series(1, 100) g');
    // Until the standby has the table and the probe has seen it healthy.
    for (;;) {
      const r = await replicated
        .transaction(
          () =>
            replicated.query<{ s: boolean; ok: boolean }>(
              "select pg_is_in_recovery() as s, to_regclass('t') is not null as ok",
            ),
          { readOnly: true },
        )
        .catch(() => null);
      if (r?.rows[0]?.s && r.rows[0].ok) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const write = (db: Database) => db.transaction(() => db.query('insert into t (v) values (1)'));
    const read = (db: Database) =>
      db.transaction(() => db.query('select v from t where id = 7'), { readOnly: true });
    const cases: Record<string, () => Promise<unknown>> = {
      'write tx in a scope, no replicas': () => plain.scope(() => write(plain)),
      'write tx in a scope, with replicas (+ commit position)': () =>
        replicated.scope(() => write(replicated)),
      'read-only tx, no replicas (primary)': () => plain.scope(() => read(plain)),
      'read-only tx on the replica, scope wrote nothing': () => replicated.scope(() => read(replicated)),
      'read-only tx, no replicas, database on the standby itself': () => direct.scope(() => read(direct)),
      'write then read-only tx in one scope, no replicas': () =>
        plain.scope(async () => {
          await write(plain);
          await read(plain);
        }),
      'write then read-only tx in one scope, with replicas (position check)': () =>
        replicated.scope(async () => {
          await write(replicated);
          await read(replicated);
        }),
    };
    const samples = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
      for (const [name, run] of Object.entries(cases)) {
        const started = performance.now();
        for (let i = 0; i < iterations; i++) await run();
        const us = ((performance.now() - started) * 1000) / iterations;
        samples.set(name, [...(samples.get(name) ?? []), us]);
      }
    }
    console.log(
      `load average ${loadavg()
        .map((n) => n.toFixed(2))
        .join(' ')}; ${iterations} x ${rounds} rounds; median us per op`,
    );
    for (const [name, values] of samples) {
      const sorted = [...values].sort((a, b) => a - b);
      console.log(`${(sorted[Math.floor(sorted.length / 2)] as number).toFixed(0).padStart(7)}  ${name}`);
    }
    const targets = replicated.stats().targets ?? [];
    console.log(
      targets.map((t) => `${t.label}: ${t.transactions} tx, ${t.statements} statements`).join('; '),
    );
  } finally {
    await plain.close();
    await direct.close();
    await replicated.close();
    await cluster.destroy();
  }
}

await main();
