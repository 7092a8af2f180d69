// CPU per transaction over a real pg.Pool (10 workers, a scope and a transaction of 3 statements
// per unit), to compare with and without txscope/otel:
//
//   TXSCOPE_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/db node bench/otel-pg.mjs
//   TXSCOPE_BENCH_PG_URL=… node --import ./bench/otel-instrument.mjs bench/otel-pg.mjs
//
// Prints { cpuUsPerUnit, msWall }. Creates a table otel_repro in that database.
import pg from 'pg';
import { createDatabase, sql } from 'txscope';
import { pg as pgDriver } from 'txscope/pg';

const url = process.env.TXSCOPE_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const db = createDatabase({ driver: pgDriver(new pg.Pool({ connectionString: url, max: 10 })) });
await db.query('create table if not exists otel_repro (id serial primary key, v text)');
const unit = db.transactional()(async (i) => {
  const { rows } = await db.query(sql`insert into otel_repro (v) values (${String(i)}) returning id`);
  await db.query(sql`select id from otel_repro where id = ${rows[0].id}`);
  await db.query(sql`select 1`);
});
async function worker(n) {
  for (let i = 0; i < n; i++) await db.scope(() => unit(i));
}
await Promise.all(Array.from({ length: 10 }, () => worker(50)));
const before = process.cpuUsage();
const t0 = performance.now();
await Promise.all(Array.from({ length: 10 }, () => worker(200)));
const used = process.cpuUsage(before);
console.log(
  JSON.stringify({ cpuUsPerUnit: (used.user + used.system) / 2000, msWall: performance.now() - t0 }),
);
await db.close();
