/** The shared integration scenarios (test/support/clients/suite.ts) for Prisma, and what only Prisma has. */

import { adapter } from 'txscope/prisma';
import { expect, it } from 'vitest';
import { prepareSchema } from '../support/clients/index.js';
import { prismaCase, prismaFor } from '../support/clients/prisma.js';
import { integrationSuite } from '../support/clients/suite.js';

integrationSuite(prismaCase, (env) => {
  const users = async () =>
    (await env.observe<{ name: string }>('select name from users order by id')).map((r) => r.name);

  async function setup() {
    const { db, probe } = env.createDb();
    await prepareSchema(env, db);
    const prisma = prismaFor(db);
    await prisma.user.findMany();
    probe.reset();
    return { db, probe, prisma };
  }

  it('$queryRaw and $executeRaw join the ambient transaction', async () => {
    const { db, probe, prisma } = await setup();
    await expect(
      db.transaction(async () => {
        await prisma.$executeRaw`insert into users (name) values (${'raw'})`;
        const rows = await prisma.$queryRaw<{ name: string; n: number }[]>`select name, 7 as n from users`;
        expect(rows).toEqual([{ name: 'raw', n: 7 }]);
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    expect(await users()).toEqual([]);
    expect(probe.acquires).toBe(1);
  });

  it('a unique violation is P2002 and rolls the transaction back', async () => {
    const { db, prisma } = await setup();
    await expect(
      db.transaction(async () => {
        await prisma.user.create({ data: { name: 'ada' } });
        await prisma.user.create({ data: { name: 'ada' } });
      }),
    ).rejects.toMatchObject({ code: 'P2002' });
    expect(await users()).toEqual([]);
  });

  it('the array form of $transaction is one txscope transaction', async () => {
    const { db, probe, prisma } = await setup();
    await prisma.$transaction([
      prisma.user.create({ data: { name: 'a' } }),
      prisma.audit.create({ data: { event: 'e' } }),
    ]);
    expect(await users()).toEqual(['a']);
    expect(probe.statements.filter((s) => s === db.dialect.commit)).toHaveLength(1);
    expect(probe.acquires).toBe(1);
  });

  it('the isolation level of $transaction reaches BEGIN', async () => {
    const { db, probe, prisma } = await setup();
    if (db.dialect.name === 'sqlite') return;
    await prisma.$transaction(
      async (tx) => {
        await tx.user.findMany();
      },
      { isolationLevel: 'Serializable' },
    );
    for (const text of db.dialect.begin({ isolation: 'serializable', readOnly: false }))
      expect(probe.statements).toContain(text);
  });

  const crossContext = env.capabilities.observerIsolated && env.capabilities.multiConnection;

  it.runIf(crossContext)(
    'a findUnique made under db.detached runs detached where it is awaited',
    async () => {
      const { db, probe, prisma } = await setup();
      let outside: unknown = 'not run';
      await db
        .transaction(async () => {
          await prisma.user.create({ data: { name: 'uncommitted' } });
          // A Prisma query starts when awaited: here, inside the transaction.
          outside = await db.detached(() => prisma.user.findUnique({ where: { name: 'uncommitted' } }));
          throw new Error('undo');
        })
        .catch(() => {});
      expect(outside).toBeNull();
      // The lookup took a second connection: it did not run on the transaction's.
      expect(probe.acquires).toBe(2);
      expect(await users()).toEqual([]);
    },
  );

  // Not fixable from a driver adapter (docs/integrations.md): Prisma's dataloader merges findUnique
  // calls issued in the same tick into one query and dispatches every batch of that tick from one
  // process.nextTick, in the async context of the tick's first caller. Kept as tests so that a fix shows.
  it.runIf(crossContext).fails(
    'batched findUnique calls: a lookup outside never sees an uncommitted row',
    async () => {
      const { db, prisma } = await setup();
      let outside: unknown = 'not run';
      await db
        .transaction(async () => {
          await prisma.user.create({ data: { name: 'uncommitted' } });
          const inside = prisma.user.findUnique({ where: { name: 'uncommitted' } });
          const detached = db.detached(() => prisma.user.findUnique({ where: { name: 'uncommitted' } }));
          [, outside] = await Promise.all([inside, detached]);
          throw new Error('undo');
        })
        .catch(() => {});
      expect(outside).toBeNull();
    },
  );

  it.runIf(crossContext).fails(
    'batched findUnique calls: a lookup inside sees its own uncommitted row',
    async () => {
      const { db, prisma } = await setup();
      let inside: unknown = 'not run';
      let outside: unknown = 'not run';
      await db
        .transaction(async () => {
          await prisma.user.create({ data: { name: 'uncommitted' } });
          const detached = db.detached(() => prisma.user.findUnique({ where: { name: 'uncommitted' } }));
          const own = prisma.user.findUnique({ where: { name: 'uncommitted' } });
          [outside, inside] = await Promise.all([detached, own]);
          throw new Error('undo');
        })
        .catch(() => {});
      expect(outside).toBeNull();
      expect(inside).toMatchObject({ name: 'uncommitted' });
    },
  );

  // The array form of $transaction goes through the same dataloader: its BEGIN runs in the context of
  // the tick's first caller, so next to a lookup in a transaction it becomes a savepoint of that
  // transaction, and a rollback there undoes a $transaction whose promise resolved.
  it.runIf(crossContext).fails(
    'a batched $transaction([...]) commits on its own next to a transaction',
    async () => {
      const { db, prisma } = await setup();
      let committed: unknown = 'not run';
      await db
        .transaction(async () => {
          await prisma.user.create({ data: { name: 'uncommitted' } });
          const inside = prisma.user.findUnique({ where: { name: 'uncommitted' } });
          const detached = db.detached(() =>
            prisma.$transaction([prisma.audit.create({ data: { event: 'mine' } })]),
          );
          [, committed] = await Promise.all([inside, detached]);
          throw new Error('undo');
        })
        .catch(() => {});
      expect(committed).toMatchObject([{ event: 'mine' }]);
      expect(await env.observe<{ event: string }>('select event from audit')).toEqual([{ event: 'mine' }]);
    },
  );

  it('adapter() rejects what is not a txscope database', () => {
    expect(() => adapter({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
