/**
 * The many-processes app of test/scale/cluster.test.ts: a node:cluster primary and WORKERS
 * workers of a small Express app with txscope's middleware, all on one database (DATABASE_URL,
 * directly or through PgBouncer). It runs the built library (dist/), as an application would.
 *
 * POST /transfer {id, from, to, amount}: one SERIALIZABLE transaction with retry; answers
 * 200 {attempts} once committed, 500 {code} otherwise. The primary prints one JSON line
 * `{"ready":port}`, and on a "stats" line on stdin, `{"stats":[db.stats() of every worker]}`.
 */
import cluster from 'node:cluster';
import { createInterface } from 'node:readline';
import express from 'express';
import { middleware } from '../../dist/exports/express.js';
import { pg } from '../../dist/exports/pg.js';
import { createDatabase, sql } from '../../dist/index.js';

const workers = Number(process.env.WORKERS ?? 4);
const max = Number(process.env.POOL_MAX ?? 5);

if (cluster.isPrimary) {
  const listening = new Set();
  const answers = new Map();
  let port = 0;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('message', (worker, message) => {
    if (message.listening !== undefined) {
      port = message.listening;
      listening.add(worker.id);
      if (listening.size === workers) process.stdout.write(`${JSON.stringify({ ready: port })}\n`);
    } else if (message.stats !== undefined) {
      answers.set(worker.id, message.stats);
      if (answers.size === workers) {
        process.stdout.write(`${JSON.stringify({ stats: [...answers.values()] })}\n`);
        answers.clear();
      }
    }
  });
  cluster.on('exit', (worker, code) => {
    if (!stopping) {
      process.stderr.write(`worker ${worker.id} exited (${code}) during the run\n`);
      process.exitCode = 1;
    }
  });
  let stopping = false;
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'stats') for (const worker of Object.values(cluster.workers)) worker.send('stats');
  });
  process.on('SIGTERM', () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.send('stop');
    cluster.disconnect(() => process.exit());
  });
} else {
  const db = createDatabase({
    driver: pg({ connectionString: process.env.DATABASE_URL, max, acquireTimeoutMillis: 30_000 }),
    name: 'cluster',
  });
  const app = express();
  app.use(middleware(db));
  app.use(express.json());
  app.post('/transfer', async (req, res) => {
    const { id, from, to, amount } = req.body;
    let attempts = 0;
    try {
      await db.transaction(
        async () => {
          attempts++;
          // A read first, as a real transfer checks the balance: more for SERIALIZABLE to detect.
          await db.query(sql`select balance from accounts where id = ${from}`);
          // Rows locked in id order: conflicting transfers fail serialization (retried at once),
          // not deadlock (which PostgreSQL detects only after deadlock_timeout, 1 s).
          const [first, second] = from < to ? [from, to] : [to, from];
          const delta = (id) => (id === from ? -amount : amount);
          await db.query(sql`update accounts set balance = balance + ${delta(first)} where id = ${first}`);
          await db.query(sql`update accounts set balance = balance + ${delta(second)} where id = ${second}`);
          await db.query(
            sql`insert into transfers (id, src, dst, amount, worker) values (${id}, ${from}, ${to}, ${amount}, ${cluster.worker.id})`,
          );
        },
        { isolation: 'serializable', retry: { attempts: 50, baseDelayMs: 1, maxDelayMs: 20 } },
      );
      res.json({ attempts });
    } catch (error) {
      res.status(500).json({ code: error?.code ?? String(error), attempts });
    }
  });
  const server = app.listen(0, () => process.send({ listening: server.address().port }));
  server.keepAliveTimeout = 60_000;
  process.on('message', async (message) => {
    if (message === 'stats') process.send({ stats: db.stats() });
    if (message === 'stop') {
      server.close();
      await db.close();
    }
  });
}
