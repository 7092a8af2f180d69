// Workload 5: the CPU cost of one transactional call with 4 statements, on an in-memory driver
// that answers at once, against a bare async function making the same driver calls (acquire,
// BEGIN, 4 statements, COMMIT, release). No database, no I/O: what is left is the cost of the
// ambient machinery (AsyncLocalStorage, frames, leases, bookkeeping).
//
// Then the promises each call creates, counted with an async_hooks PROMISE init hook after the
// timing (a hook slows every promise down). With --pg-url, the same counts over a real pg.Pool on
// that database too, with node-postgres's own `pool.query` beside them: the in-memory driver's
// `Promise.resolve` answers are not what node-postgres creates, so (c) ≤ (d) + 2 is checked there.
// Prints one JSON object.
//
//   node bench/overhead.mjs [--iterations 200000] [--batches 15] [--pg-url postgres://…]
import { createHook } from 'node:async_hooks';
import { parseArgs } from 'node:util';
import { createDatabase, sql } from 'txscope';
import { pg as pgDriver } from 'txscope/pg';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '100000' },
    batches: { type: 'string', default: '11' },
    'pg-url': { type: 'string' },
  },
});
const iterations = Number(values.iterations);
const batches = Number(values.batches);

// PostgreSQL's dialect from the public driver: creating it opens nothing (its pool is made on the first acquire).
const postgresDialect = pgDriver({ connectionString: 'postgres://unused' }).dialect;

const rowResult = { rows: [{ id: 1 }], rowCount: 1, command: 'INSERT' };
const commitResult = { rows: [], rowCount: 0, command: 'COMMIT' };
const beginResult = { rows: [], rowCount: 0, command: 'BEGIN' };

/** A connection that answers every statement at once (a resolved promise) and tracks its transaction state. */
let state = 'idle';
const connection = {
  query(text) {
    if (text === 'BEGIN') {
      state = 'in_transaction';
      return Promise.resolve(beginResult);
    }
    if (text === 'COMMIT' || text === 'ROLLBACK') {
      state = 'idle';
      return Promise.resolve(commitResult);
    }
    return Promise.resolve(rowResult);
  },
  status: () => state,
  cancel: () => Promise.resolve(),
};

/** A txscope Driver (src/driver.ts) over that connection. */
const driver = {
  dialect: postgresDialect,
  label: 'memory',
  acquire: () => Promise.resolve(connection),
  release() {},
  classify: () => 'other',
  counts: () => ({ total: 1, idle: 1, waiting: 0, max: 10 }),
  close: () => Promise.resolve(),
};

const text = [
  'insert into users (email, name) values ($1, $2) returning id',
  'insert into profiles (user_id, bio) values ($1, $2)',
  'insert into audit_log (user_id, action) values ($1, $2)',
  'select id, email, name from users where id = $1',
];

/** The hand-written equivalent: the same driver calls, with the connection passed by hand. */
async function bare(email) {
  const c = await driver.acquire();
  try {
    await c.query('BEGIN', []);
    const id = (await c.query(text[0], [email, 'n'])).rows[0].id;
    await c.query(text[1], [id, 'bio']);
    await c.query(text[2], [id, 'signed up']);
    const user = (await c.query(text[3], [id])).rows[0];
    await c.query('COMMIT', []);
    return user;
  } catch (error) {
    await c.query('ROLLBACK', []);
    throw error;
  } finally {
    driver.release(c, { destroy: false });
  }
}

const db = createDatabase({ driver });

// What `@Transactional() async signUp(email)` compiles to, with repositories calling db.query.
const signUpText = db.transactional()(async (email) => {
  const id = (await db.query(text[0], [email, 'n'])).rows[0].id;
  await db.query(text[1], [id, 'bio']);
  await db.query(text[2], [id, 'signed up']);
  return (await db.query(text[3], [id])).rows[0];
});

// The same with the sql`` tag, as the README writes repositories (adds building the statement).
const signUpSql = db.transactional()(async (email) => {
  const id = (await db.query(sql`insert into users (email, name) values (${email}, ${'n'}) returning id`))
    .rows[0].id;
  await db.query(sql`insert into profiles (user_id, bio) values (${id}, ${'bio'})`);
  await db.query(sql`insert into audit_log (user_id, action) values (${id}, ${'signed up'})`);
  return (await db.query(sql`select id, email, name from users where id = ${id}`)).rows[0];
});

// A whole request: the middleware's scope around the transactional call.
const inScope = (email) => db.scope(() => signUpText(email));

const variants = {
  bare,
  'transactional, text': signUpText,
  'transactional, sql``': signUpSql,
  'scope + transactional, text': inScope,
};

/** CPU nanoseconds per call of `fn`, over `n` sequential awaited calls. */
async function measure(fn, n) {
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) await fn('a@b.c');
  const used = process.cpuUsage(before);
  return ((used.user + used.system) * 1000) / n;
}

const median = (list) => {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

// On Node < 24 AsyncLocalStorage runs on promise hooks, which every promise of the process pays for
// once the first scope or transaction has run: the bare function is timed first, before that
// (the honest baseline), and again afterwards among the others.
const bareUser = await bare('a@b.c');
if (bareUser?.id !== 1) throw new Error('the bare function did not return the row');
await measure(bare, Math.min(iterations, 20_000));
const clean = [];
for (let b = 0; b < batches; b++) clean.push(await measure(bare, iterations));

// Check the variants work before timing them.
for (const fn of Object.values(variants)) {
  const user = await fn('a@b.c');
  if (user?.id !== 1) throw new Error('a variant did not return the row');
}
const stats = db.stats();
if (stats.commits !== 3 || stats.statements !== 18)
  throw new Error(`unexpected stats ${JSON.stringify(stats)}`);

// Warm up every variant (JIT), then interleave batches so drift hits them alike.
for (const fn of Object.values(variants)) await measure(fn, Math.min(iterations, 20_000));
/** @type {Record<string, number[]>} */
const samples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let b = 0; b < batches; b++) {
  for (const [name, fn] of Object.entries(variants)) samples[name].push(await measure(fn, iterations));
}
const baseline = median(clean);
const ns = { 'bare, before any scope': baseline };
for (const [name, list] of Object.entries(samples)) ns[name === 'bare' ? 'bare, after' : name] = median(list);

// ---- promise counts ----

let created = 0;
const hook = createHook({
  init(_id, type) {
    if (type === 'PROMISE') created++;
  },
});

/**
 * Promises created per awaited call of `fn`, as the hook sees them: the caller's `await` included
 * (with a hook on, V8 makes one throwaway promise per await), the same for every row.
 * @param {() => Promise<unknown>} fn
 */
async function countPromises(fn, n = 50) {
  // The first call may take lazy paths (a pool's first connection, a statement's first compile).
  await fn();
  await fn();
  hook.enable();
  const before = created;
  for (let i = 0; i < n; i++) await fn();
  const total = created - before;
  hook.disable();
  return total / n;
}

const autocommit = () => db.query(text[3], [1]);
const promises = {};
for (const [name, fn] of Object.entries(variants)) promises[name] = await countPromises(() => fn('a@b.c'));
promises['db.query, autocommit'] = await countPromises(autocommit);

/** The same counts over node-postgres and a real pg.Pool of one connection; null without --pg-url. */
async function countOverPg(url) {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  const real = createDatabase({ driver: pgDriver(pool) });
  // Four statements that read nothing: only the number of promises matters here, not what runs.
  const select = 'select $1::int as id';
  const transactional = real.transactional()(async () => {
    for (let i = 0; i < 4; i++) await real.query(select, [i]);
  });
  const handWritten = async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      for (let i = 0; i < 4; i++) await client.query(select, [i]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };
  try {
    return {
      'db.query, autocommit': await countPromises(() => real.query(select, [1])),
      'pool.query (node-postgres)': await countPromises(() => pool.query(select, [1])),
      'transactional, 4 statements': await countPromises(transactional),
      'hand-written pg transaction, 4 statements': await countPromises(handWritten),
    };
  } finally {
    await real.close();
  }
}

let promisesPg = null;
let pgError = null;
if (values['pg-url'] !== undefined) {
  try {
    promisesPg = await countOverPg(values['pg-url']);
  } catch (error) {
    pgError = error instanceof Error ? error.message : String(error);
  }
}

process.stdout.write(
  `${JSON.stringify({
    node: process.version,
    iterations,
    batches,
    nsPerCall: ns,
    addedNs: Object.fromEntries(Object.entries(ns).map(([k, v]) => [k, v - baseline])),
    promises,
    promisesPg,
    pgError,
  })}\n`,
);
await db.close();
