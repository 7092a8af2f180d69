/** The shared integration scenarios (test/support/clients/suite.ts) for TypeORM, and what only TypeORM has. */
import { type Database, isTxScopeError, Transactional } from 'txscope';
import { createDataSource } from 'txscope/typeorm';
import { type EntitySubscriberInterface, EventSubscriber, QueryFailedError } from 'typeorm';
import { expect, it } from 'vitest';
import { prepareSchema } from '../support/clients/index.js';
import { integrationSuite } from '../support/clients/suite.js';
import { entityDataSource, repositoriesOf, typeormCase } from '../support/clients/typeorm.js';
import type { Probe } from '../support/drivers.js';

const boom = new Error('boom');

/** What TypeORM's subscribers were told, in order, with the users a second connection saw then. */
const told: string[] = [];

integrationSuite(typeormCase, (env) => {
  const isolated = env.capabilities.observerIsolated;
  const users = async () =>
    (await env.observe<{ name: string }>('select name from users order by id')).map((r) => r.name);
  const count = async (table: string) =>
    Number((await env.observe<{ n: number | string }>(`select count(*) as n from ${table}`))[0]?.n);
  const beginText = (db: Database) => db.dialect.begin({ isolation: undefined, readOnly: false })[0] ?? '';
  const begins = (db: Database, probe: Probe) => probe.statements.filter((s) => s === beginText(db)).length;
  const commits = (db: Database, probe: Probe) =>
    probe.statements.filter((s) => s === db.dialect.commit).length;

  async function setup(options: Parameters<typeof entityDataSource>[1] = {}) {
    const { db, probe } = env.createDb();
    await prepareSchema(env, db);
    const made = await entityDataSource(db, options);
    probe.reset();
    return { db, probe, ...made };
  }

  it('a decorated (experimentalDecorators) @Transactional() service commits its repositories once', async () => {
    const { db, probe, fixture, repos } = await setup();
    const service = fixture.defineOrderService(Transactional, repos);
    const user = await service.placeOrder('ada', [1, 2]);
    expect(user.id).toEqual(expect.any(Number));
    expect(await users()).toEqual(['ada']);
    expect(await count('orders')).toBe(2);
    expect(await count('audit')).toBe(1);
    expect(probe.acquires).toBe(1);
    expect(begins(db, probe)).toBe(1);
    expect(commits(db, probe)).toBe(1);
    expect(probe.statements.some((s) => /^SAVEPOINT/i.test(s))).toBe(false);

    await expect(service.placeAndFail('bob')).rejects.toThrow('payment declined');
    expect(await users()).toEqual(['ada']);
    expect(await count('orders')).toBe(2);

    await service.placeWithOptionalAudit('cy');
    expect(await users()).toEqual(['ada', 'cy']);
    expect(
      (await env.observe<{ event: string }>('select event from audit order by id')).map((r) => r.event),
    ).toEqual(['order for ada', 'kept']);
    expect(probe.checkedOut).toBe(0);
  });

  it('save() with cascades writes the relations in the ambient transaction, and rolls them back with it', async () => {
    const { db, probe, repos } = await setup();
    await expect(
      db.transaction(async () => {
        await repos.users.save(
          repos.users.create({ name: 'ada', orders: [{ total: 1 }, { total: 2 }] as never }),
        );
        if (isolated) expect(await count('orders')).toBe(0);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect([await count('users'), await count('orders')]).toEqual([0, 0]);
    expect(probe.acquires).toBe(1);

    probe.reset();
    // Outside a transaction, save() is a transaction of its own, as TypeORM does it.
    const saved = await repos.users.save(
      repos.users.create({ name: 'bob', orders: [{ total: 3 }, { total: 4 }] as never }),
    );
    expect(begins(db, probe)).toBe(1);
    expect(commits(db, probe)).toBe(1);
    const rows = await env.observe<{ user_id: number; total: number }>(
      'select user_id, total from orders order by total',
    );
    expect(rows.map((r) => [Number(r.user_id), Number(r.total)])).toEqual([
      [saved.id, 3],
      [saved.id, 4],
    ]);
  });

  it('find() with relations and query builders read the transaction’s own uncommitted rows', async () => {
    const { db, probe, repos, dataSource } = await setup();
    await db.transaction(async () => {
      const user = await repos.users.save(repos.users.create({ name: 'ada' }));
      await repos.orders.save([
        repos.orders.create({ user, total: 5 }),
        repos.orders.create({ user, total: 7 }),
      ]);
      const found = await repos.users.find({ relations: { orders: true }, where: { name: 'ada' } });
      expect(found).toHaveLength(1);
      expect(found[0]?.orders.map((o) => o.total).sort()).toEqual([5, 7]);
      const sum = await dataSource
        .createQueryBuilder()
        .select('sum(o.total)', 'sum')
        .from('orders', 'o')
        .getRawOne<{ sum: number | string }>();
      expect(Number(sum?.sum)).toBe(12);
      const raw = await dataSource.query('select count(*) as n from users');
      expect(Number(raw[0].n)).toBe(1);
      if (isolated) expect(await count('orders')).toBe(0);
    });
    expect(await count('orders')).toBe(2);
    expect(probe.acquires).toBe(1);
    expect(begins(db, probe)).toBe(1);
  });

  it('queryRunner.startTransaction()/commit/rollback are txscope transactions; a second start is a savepoint', async () => {
    const { db, probe, dataSource, fixture } = await setup();
    const runner = dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    const repos = repositoriesOf(runner.manager, fixture);
    await repos.users.save(repos.users.create({ name: 'kept' }));
    expect(runner.isTransactionActive).toBe(true);
    await runner.startTransaction();
    await repos.users.save(repos.users.create({ name: 'undone' }));
    await runner.rollbackTransaction();
    if (isolated) expect(await users()).toEqual([]);
    await runner.commitTransaction();
    expect(runner.isTransactionActive).toBe(false);
    await runner.release();
    expect(await users()).toEqual(['kept']);
    expect(begins(db, probe)).toBe(1);
    expect(probe.statements.some((s) => /^ROLLBACK TO SAVEPOINT/i.test(s))).toBe(true);

    // A runner released with its transaction open rolls it back.
    const left = dataSource.createQueryRunner();
    await left.startTransaction();
    await left.query("insert into users (name) values ('left')");
    await left.release();
    expect(await users()).toEqual(['kept']);
    expect(probe.checkedOut).toBe(0);
  });

  it('dataSource.transaction(isolation, fn) passes the isolation level to BEGIN', async () => {
    const { db, probe, dataSource, fixture } = await setup();
    const level = db.dialect.isolationLevels.includes('repeatable read') ? 'repeatable read' : 'serializable';
    await dataSource.transaction(level.toUpperCase() as 'SERIALIZABLE', async (manager) => {
      expect(db.current.isolation).toBe(level);
      await repositoriesOf(manager, fixture).users.save({ name: 'ada' });
    });
    for (const text of db.dialect.begin({ isolation: level, readOnly: false }))
      expect(probe.statements).toContain(text);
    expect(await users()).toEqual(['ada']);
  });

  it('subscribers hear afterTransactionCommit/Rollback at the real outcome, not at a savepoint', async () => {
    told.length = 0;
    class Events implements EntitySubscriberInterface {
      async afterTransactionCommit() {
        told.push(`commit:${await count('users')}`);
      }
      async afterTransactionRollback() {
        told.push(`rollback:${await count('users')}`);
      }
    }
    EventSubscriber()(Events); // TypeORM takes only decorated subscriber classes
    const { db, dataSource, fixture } = await setup({ subscribers: [Events] });
    await dataSource.transaction((m) => repositoriesOf(m, fixture).users.save({ name: 'ada' }));
    // The row is committed by the time the subscriber hears of it.
    expect(told).toEqual(['commit:1']);

    told.length = 0;
    await expect(
      db.transaction(async () => {
        await dataSource.transaction((m) => repositoriesOf(m, fixture).users.save({ name: 'bob' }));
        expect(told).toEqual([]); // a released savepoint is not a commit yet
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(told).toEqual(['rollback:1']);

    told.length = 0;
    await db.transaction(async () => {
      await dataSource
        .transaction(async (m) => {
          await repositoriesOf(m, fixture).users.save({ name: 'cy' });
          throw boom;
        })
        .catch(() => undefined);
      // A savepoint rolled back is known at once.
      expect(told).toHaveLength(1);
      await dataSource.transaction((m) => repositoriesOf(m, fixture).users.save({ name: 'dee' }));
    });
    expect(told[0]).toMatch(/^rollback:/);
    expect(told[1]).toBe('commit:2');
    expect(await users()).toEqual(['ada', 'dee']);
  });

  it('runMigrations() runs the migrations, in one transaction where DDL allows it (not on MySQL)', async () => {
    const { db, probe } = await setup();
    await db.query('drop table if exists notes');
    await db.query('drop table if exists migrations');
    const { CreateNotes1700000000000: CreateNotes, BrokenMigration1700000000001: Broken } = (
      await entityDataSource(db)
    ).fixture;
    const first = createDataSource(db, {
      type: db.dialect.name === 'mysql' ? 'mariadb' : undefined,
      migrations: [CreateNotes],
    });
    await first.initialize();
    probe.reset();
    const ran = await db.scope(() => first.runMigrations());
    expect(ran.map((m) => m.name)).toEqual(['CreateNotes1700000000000']);
    expect(await env.observe('select id, body from notes')).toEqual([{ id: 1, body: 'first' }]);
    const ddl = probe.statements.findIndex((s) => s.startsWith('create table notes'));
    const began = probe.statements.indexOf(beginText(db));
    if (db.dialect.name === 'mysql') expect(began).toBe(-1);
    else {
      expect(began).toBeGreaterThanOrEqual(0);
      expect(began).toBeLessThan(ddl);
    }

    const second = createDataSource(db, {
      type: db.dialect.name === 'mysql' ? 'mariadb' : undefined,
      migrations: [CreateNotes, Broken],
    });
    await second.initialize();
    await expect(db.scope(() => second.runMigrations())).rejects.toBeInstanceOf(QueryFailedError);
    const notes = (await env.observe<{ id: number }>('select id from notes order by id')).map((r) => r.id);
    // In a transaction the broken migration left nothing; in autocommit its first statement stays.
    expect(notes).toEqual(db.dialect.name === 'mysql' ? [1, 2] : [1]);
    expect(await count('migrations')).toBe(1);
    await db.query('drop table notes');
    await db.query('drop table migrations');
  });

  it('a statement from a transaction that has ended rejects with txscope’s error, not a QueryFailedError', async () => {
    const { db, repos } = await setup();
    let late: Promise<unknown> = Promise.resolve();
    await db.transaction(async () => {
      await repos.users.save({ name: 'ada' });
      late = (async () => {
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setImmediate(resolve));
        return repos.users.find();
      })();
      late.catch(() => undefined); // asserted below, once the transaction has ended
    });
    await expect(late).rejects.toSatisfy((e) => isTxScopeError(e) && e.code === 'ERR_TRANSACTION_CLOSED');
    // A driver error stays TypeORM's, with the driver's error inside.
    await expect(repos.users.insert({ name: 'ada' })).rejects.toBeInstanceOf(QueryFailedError);
  });

  it('two data sources on one database join the same transaction', async () => {
    const { db, probe, repos } = await setup();
    const other = await entityDataSource(db);
    probe.reset();
    await expect(
      db.transaction(async () => {
        await repos.users.save({ name: 'one' });
        await other.repos.audit.save({ event: 'two' });
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect([await count('users'), await count('audit')]).toEqual([0, 0]);
    expect(probe.acquires).toBe(1);
  });

  it('stream() hands out the buffered rows', async () => {
    const { repos } = await setup();
    await repos.users.save([{ name: 'a' }, { name: 'b' }]);
    const stream = await repos.users
      .createQueryBuilder('u')
      .select('u.name', 'name')
      .orderBy('u.id')
      .stream();
    const seen: string[] = [];
    for await (const row of stream) seen.push((row as { name: string }).name);
    expect(seen).toEqual(['a', 'b']);
  });

  it('strict mode: initialize() runs in a scope of its own; a repository outside any scope rejects ERR_OUTSIDE_SCOPE', async () => {
    await prepareSchema(env, env.createDb().db);
    const { db } = env.createDb({ strict: true });
    const { repos } = await entityDataSource(db);
    await expect(repos.users.find()).rejects.toSatisfy(
      (e) => isTxScopeError(e) && e.code === 'ERR_OUTSIDE_SCOPE',
    );
    await expect(db.scope(() => repos.users.find())).resolves.toEqual([]);
  });

  it('createDataSource refuses connection options, a type of another database, and what is not a database', () => {
    const { db } = env.createDb();
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_OPTION' });
    expect(() => createDataSource(db, { host: 'x' } as never)).toThrow(invalid);
    expect(() => createDataSource(db, { poolSize: 3 } as never)).toThrow(invalid);
    const foreign = db.dialect.name === 'postgres' ? 'better-sqlite3' : 'postgres';
    expect(() => createDataSource(db, { type: foreign })).toThrow(invalid);
    expect(() => createDataSource({} as never, {})).toThrow(invalid);
  });
});
