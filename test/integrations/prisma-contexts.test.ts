/**
 * PROPOSAL (issue 21): the cross-context cases of test/integrations/prisma.test.ts, which fail with
 * the fixed setup, pass once the client is extended with test/support/clients/prisma-contexts.ts.
 * TXSCOPE_PRISMA_BASELINE=1 runs the same cases without the extension, to measure the bug.
 */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Database } from 'txscope';
import { middleware } from 'txscope/express';
import { expect, it } from 'vitest';
import { prepareSchema } from '../support/clients/index.js';
import { type Prisma, prismaFor } from '../support/clients/prisma.js';
import { separateContexts } from '../support/clients/prisma-contexts.js';
import { forEachDriver, until } from '../support/drivers.js';

const baseline = process.env.TXSCOPE_PRISMA_BASELINE === '1';

forEachDriver('prisma: one batch per async context (proposal)', (env) => {
  const multi = env.capabilities.multiConnection;
  const users = async () =>
    (await env.observe<{ name: string }>('select name from users order by id')).map((r) => r.name);

  async function setup(max = 5) {
    const { db, probe } = env.createDb({ max });
    await prepareSchema(env, db);
    const base = prismaFor(db);
    const prisma = (baseline ? base : base.$extends(separateContexts)) as unknown as Prisma;
    await prisma.user.findMany();
    probe.reset();
    return { db, probe, prisma };
  }

  it.runIf(multi)('batched findUnique calls: a lookup outside never sees an uncommitted row', async () => {
    const { db, prisma } = await setup();
    let inside: unknown = 'not run';
    let outside: unknown = 'not run';
    await db
      .transaction(async () => {
        await prisma.user.create({ data: { name: 'uncommitted' } });
        const own = prisma.user.findUnique({ where: { name: 'uncommitted' } });
        const detached = db.detached(() => prisma.user.findUnique({ where: { name: 'uncommitted' } }));
        [inside, outside] = await Promise.all([own, detached]);
        throw new Error('undo');
      })
      .catch(() => {});
    expect(outside).toBeNull();
    expect(inside).toMatchObject({ name: 'uncommitted' });
    expect(await users()).toEqual([]);
  });

  it.runIf(multi)(
    'batched findUnique calls: the lookup outside issued first, the inside one still sees its row',
    async () => {
      const { db, prisma } = await setup();
      let inside: unknown = 'not run';
      let outside: unknown = 'not run';
      await db
        .transaction(async () => {
          await prisma.user.create({ data: { name: 'uncommitted' } });
          const detached = db.detached(() =>
            prisma.user.findUniqueOrThrow({ where: { name: 'uncommitted' } }),
          );
          const own = prisma.user.findUniqueOrThrow({ where: { name: 'uncommitted' } });
          const [a, b] = await Promise.allSettled([detached, own]);
          outside = a.status;
          inside = b.status === 'fulfilled' ? b.value : b.reason;
          throw new Error('undo');
        })
        .catch(() => {});
      expect(outside).toBe('rejected'); // P2025: no such row outside
      expect(inside).toMatchObject({ name: 'uncommitted' });
    },
  );

  it.runIf(multi)('a batched $transaction([...]) commits on its own next to a transaction', async () => {
    const { db, prisma } = await setup();
    await db
      .transaction(async () => {
        await prisma.user.create({ data: { name: 'uncommitted' } });
        const own = prisma.user.findUnique({ where: { name: 'uncommitted' } });
        const detached = db.detached(() =>
          prisma.$transaction([prisma.audit.create({ data: { event: 'mine' } })]),
        );
        await Promise.all([own, detached]);
        throw new Error('undo');
      })
      .catch(() => {});
    expect(await env.observe<{ event: string }>('select event from audit')).toEqual([{ event: 'mine' }]);
    expect(await users()).toEqual([]);
  });

  it.runIf(multi)(
    'a raw query of another interactive transaction first in the tick: the lookup still runs inside',
    async () => {
      const { db, prisma } = await setup();
      let inside: unknown = 'not run';
      await db
        .transaction(async () => {
          await prisma.user.create({ data: { name: 'uncommitted' } });
          let go!: () => void;
          const gate = new Promise<void>((resolve) => {
            go = resolve;
          });
          let waiting = false;
          const other = db.detached(() =>
            prisma.$transaction(async (tx) => {
              waiting = true;
              await gate;
              return tx.$queryRaw`select 1 as one`;
            }),
          );
          const own = gate.then(() => prisma.user.findUnique({ where: { name: 'uncommitted' } }));
          // The other transaction has begun and waits at the gate: release both in one drain.
          await until(() => waiting, 5000, 'the other transaction to begin');
          go();
          [, inside] = await Promise.all([other, own]);
          throw new Error('undo');
        })
        .catch(() => {});
      expect(inside).toMatchObject({ name: 'uncommitted' });
    },
  );

  it('calls of one context still batch into one statement', async () => {
    const { db, probe, prisma } = await setup();
    await prisma.user.create({ data: { name: 'a' } });
    await prisma.user.create({ data: { name: 'b' } });
    probe.reset();
    const found = await db.transaction(() =>
      Promise.all([
        prisma.user.findUnique({ where: { name: 'a' } }),
        prisma.user.findUnique({ where: { name: 'b' } }),
      ]),
    );
    expect(found.map((u) => u?.name)).toEqual(['a', 'b']);
    expect(probe.statements.filter((s) => /^select/i.test(s))).toHaveLength(1);
  });

  it('200 requests through the Express middleware: no lookup outside sees a row rolled back inside', async () => {
    const { db, prisma } = await setup(5);
    const result = await loadRun(db, prisma);
    if (baseline) process.stderr.write(`[baseline ${env.name}] ${JSON.stringify(result)}\n`);
    expect(result.outsideSaw).toBe(0);
    expect(result.insideSaw).toBe(result.inside);
    expect(result.failed).toBe(0);
    expect(await users()).toEqual([]);
  }, 60_000);
});

/**
 * A promise many requests wait on at once, as on an in-flight cache fill or a batched auth check:
 * they all continue in one microtask drain, so their next Prisma calls share one dataloader tick.
 */
function sharedWait(): () => Promise<void> {
  let pending: Promise<void> | undefined;
  return () => {
    pending ??= new Promise<void>((resolve) =>
      setTimeout(() => {
        pending = undefined;
        resolve();
      }, 2),
    );
    return pending;
  };
}

async function loadRun(db: Database, prisma: Prisma) {
  const shared = sharedWait();
  const app = express();
  app.use(middleware(db));
  app.post('/inside/:n', async (req, res) => {
    const name = `row-${req.params.n}`;
    let seen = false;
    await db
      .transaction(async () => {
        await prisma.user.create({ data: { name } });
        await shared();
        seen = (await prisma.user.findUnique({ where: { name } })) !== null;
        throw new Error('undo');
      })
      .catch(() => {});
    res.json({ seen });
  });
  app.get('/outside/:n', async (req, res) => {
    await shared();
    res.json({ seen: (await prisma.user.findUnique({ where: { name: `row-${req.params.n}` } })) !== null });
  });
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const call = (method: string, path: string) =>
    new Promise<{ seen: boolean } | null>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method, path, timeout: 20_000 }, (res) => {
        let body = '';
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve(res.statusCode === 200 ? (JSON.parse(body) as { seen: boolean }) : null));
      });
      req.on('error', () => resolve(null));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  const jobs = Array.from({ length: 200 }, (_, i) => ({
    inside: i % 2 === 0,
    path: i % 2 === 0 ? `/inside/${i >> 1}` : `/outside/${i >> 1}`,
  }));
  const results: ({ seen: boolean } | null)[] = new Array(jobs.length);
  let next = 0;
  // Concurrency 50, as in the measurement.
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < jobs.length) {
        const i = next++;
        const job = jobs[i] as (typeof jobs)[number];
        results[i] = await call(job.inside ? 'POST' : 'GET', job.path);
      }
    }),
  );
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  const of = (inside: boolean) => results.filter((_, i) => jobs[i]?.inside === inside);
  return {
    inside: of(true).length,
    insideSaw: of(true).filter((r) => r?.seen === true).length,
    outsideSaw: of(false).filter((r) => r?.seen === true).length,
    failed: results.filter((r) => r === null).length,
  };
}
