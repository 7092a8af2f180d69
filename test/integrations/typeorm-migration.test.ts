/**
 * The rows of docs/migrating-from-typeorm-transactional.md: each typeorm-transactional API's
 * txscope equivalent, with TypeORM repositories, on every driver. Assertions are on what the
 * database saw (a second connection) and what the driver was sent.
 */
import { type Database, Propagation, Transactional } from 'txscope';
import { withRollback } from 'txscope/testing';
import { createDataSource } from 'txscope/typeorm';
import { DataSource } from 'typeorm';
import { expect, it } from 'vitest';
import { prepareSchema } from '../support/clients/index.js';
import { entityDataSource, type Repositories } from '../support/clients/typeorm.js';
import { forEachDriver, type Probe } from '../support/drivers.js';

const boom = new Error('boom');

forEachDriver('migrating from typeorm-transactional', (env) => {
  const isolated = env.capabilities.observerIsolated;
  const multi = env.capabilities.multiConnection;
  const names = async (table: 'users' | 'audit') =>
    (
      await env.observe<Record<string, string>>(
        `select ${table === 'users' ? 'name' : 'event'} as v from ${table} order by id`,
      )
    ).map((r) => r.v);
  const code = (c: string) => expect.objectContaining({ code: c });

  async function setup(options: { default?: boolean } = {}) {
    const { db, probe } = env.createDb(options);
    await prepareSchema(env, db);
    const made = await entityDataSource(db);
    probe.reset();
    return { db, probe, ...made };
  }
  const addUser = (repos: Repositories, name: string) => repos.users.save(repos.users.create({ name }));

  it('setup: createDatabase + createDataSource, no initializeTransactionalContext or addTransactionalDataSource', async () => {
    const { db, probe, dataSource, repos } = await setup();
    expect(dataSource).toBeInstanceOf(DataSource);
    expect(dataSource.isInitialized).toBe(true);
    const signUp = Transactional()(async () => {
      await addUser(repos, 'ada');
      await repos.audit.save({ event: 'signed up' });
    });
    await signUp();
    expect(await names('users')).toEqual(['ada']);
    expect(probe.acquires).toBe(1);
    expect(probe.statements.filter((s) => s === db.dialect.commit)).toHaveLength(1);
  });

  it('connectionName: a second database is its own db, with its own boundaries', async () => {
    const main = await setup();
    const second = await setup({ default: false });
    // Transactional() is the default database's; second.db.transactional() is the second's.
    const onSecond = second.db.transactional()(async () => {
      await addUser(second.repos, 'second');
      expect(second.db.current.inTransaction).toBe(true);
      expect(main.db.current.inTransaction).toBe(false);
      throw boom;
    });
    await expect(onSecond()).rejects.toBe(boom);
    expect(await names('users')).toEqual([]);
    expect(second.probe.acquires).toBe(1);
    expect(main.probe.acquires).toBe(0);
  });

  it('deleteDataSourceByName: dataSource.destroy() leaves the txscope database open; db.close() closes it', async () => {
    const { db, dataSource, repos } = await setup();
    await dataSource.destroy();
    await expect(db.query('select 1 as one')).resolves.toMatchObject({ rows: [expect.anything()] });
    await db.close();
    await expect(repos.users.find()).rejects.toEqual(code('ERR_DATABASE_CLOSED'));
  });

  it('Propagation.REQUIRED joins; a failed joined frame makes the transaction rollback-only', async () => {
    const { db, repos } = await setup();
    await expect(
      db.transaction(async () => {
        await addUser(repos, 'outer');
        await db
          .transaction(
            async () => {
              await addUser(repos, 'inner');
              throw boom;
            },
            { propagation: Propagation.REQUIRED },
          )
          .catch(() => 'swallowed');
      }),
    ).rejects.toEqual(code('ERR_ROLLBACK_ONLY'));
    expect(await names('users')).toEqual([]);
  });

  it.runIf(multi)(
    'Propagation.REQUIRES_NEW commits on a second connection while the outer rolls back',
    async () => {
      const { db, probe, repos } = await setup();
      await expect(
        db.transaction(async () => {
          await addUser(repos, 'doomed');
          await db.transaction(() => repos.audit.save({ event: 'kept' }), {
            propagation: Propagation.REQUIRES_NEW,
          });
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await names('users')).toEqual([]);
      expect(await names('audit')).toEqual(['kept']);
      expect(probe.acquires).toBe(2);
    },
  );

  it('Propagation.NESTED is a savepoint on the same connection (typeorm-transactional runs a new transaction)', async () => {
    const { db, probe, repos } = await setup();
    await db.transaction(async () => {
      await addUser(repos, 'outer');
      await db
        .transaction(
          async () => {
            await addUser(repos, 'inner');
            throw boom;
          },
          { propagation: Propagation.NESTED },
        )
        .catch(() => 'handled');
      await repos.audit.save({ event: 'after' });
    });
    expect(await names('users')).toEqual(['outer']);
    expect(await names('audit')).toEqual(['after']);
    expect(probe.acquires).toBe(1);
    expect(probe.statements.some((s) => /^ROLLBACK TO SAVEPOINT/i.test(s))).toBe(true);
  });

  it('Propagation.MANDATORY outside a transaction and NEVER inside one refuse before anything runs', async () => {
    const { db, probe, repos } = await setup();
    let ran = false;
    const mandatory = db.transactional({ propagation: Propagation.MANDATORY })(async () => {
      ran = true;
      await addUser(repos, 'x');
    });
    await expect(mandatory()).rejects.toEqual(code('ERR_NO_TRANSACTION'));
    const never = db.transactional({ propagation: Propagation.NEVER })(async () => {
      ran = true;
    });
    await expect(db.transaction(() => never())).rejects.toEqual(code('ERR_EXISTING_TRANSACTION'));
    expect(ran).toBe(false);
    expect(probe.statements).toEqual([]);
  });

  it('Propagation.SUPPORTS joins a transaction, or runs without one', async () => {
    const { db, probe, repos } = await setup();
    const supports = db.transactional({ propagation: Propagation.SUPPORTS })(async (name: string) => {
      await addUser(repos, name);
      return db.current.inTransaction;
    });
    await expect(
      db.transaction(async () => {
        expect(await supports('joined')).toBe(true);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await supports('alone')).toBe(false);
    expect(await names('users')).toEqual(['alone']);
    expect(probe.checkedOut).toBe(0);
  });

  it.runIf(multi)('Propagation.NOT_SUPPORTED suspends the transaction and runs in autocommit', async () => {
    const { db, repos } = await setup();
    await expect(
      db.transaction(async () => {
        await addUser(repos, 'doomed');
        await db.transaction(() => repos.audit.save({ event: 'autocommit' }), {
          propagation: Propagation.NOT_SUPPORTED,
        });
        if (isolated) expect(await names('audit')).toEqual(['autocommit']);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await names('users')).toEqual([]);
    expect(await names('audit')).toEqual(['autocommit']);
  });

  it('isolationLevel: IsolationLevel.X is isolation: "x", sent with BEGIN', async () => {
    const { db, probe, repos } = await setup();
    const level = db.dialect.isolationLevels.includes('read committed') ? 'read committed' : 'serializable';
    await db.transaction(() => addUser(repos, 'ada'), { isolation: level });
    for (const text of db.dialect.begin({ isolation: level, readOnly: false }))
      expect(probe.statements).toContain(text);
  });

  it('runInTransaction(fn) is db.transaction(fn); wrapInTransaction(fn) is db.transactional()(fn)', async () => {
    const { db, probe, repos } = await setup();
    const id = await db.transaction(async () => (await addUser(repos, 'ada')).id);
    expect(id).toEqual(expect.any(Number));
    const wrapped = db.transactional({ propagation: Propagation.REQUIRED })(async (name: string) => {
      await addUser(repos, name);
      throw boom;
    });
    await expect(wrapped('bob')).rejects.toBe(boom);
    expect(await names('users')).toEqual(['ada']);
    expect(probe.acquires).toBe(2);
  });

  it('runOnTransactionCommit/Rollback/Complete are db.afterCommit/afterRollback/afterCompletion, after the connection is back', async () => {
    const { db, probe, repos } = await setup();
    const seen: string[] = [];
    await db.transaction(async () => {
      await addUser(repos, 'ada');
      db.afterCommit(async () => {
        seen.push(`commit: ${(await names('users')).join()} checked out ${probe.checkedOut}`);
      });
      db.afterCompletion((status) => {
        seen.push(`complete: ${status}`);
      });
    });
    await expect(
      db.transaction(async () => {
        await addUser(repos, 'bob');
        db.afterRollback(() => {
          seen.push(`rollback: checked out ${probe.checkedOut}`);
        });
        db.afterCommit(() => {
          seen.push('never');
        });
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(seen).toEqual(['commit: ada checked out 0', 'complete: committed', 'rollback: checked out 0']);
  });

  it('unit tests need no jest.mock: a @Transactional() method over mocked repositories takes no connection', async () => {
    // A database that has never run a statement: nothing in the test below opens a connection.
    const { probe } = env.createDb(); // the default database Transactional() uses
    const mocked = { save: async (user: { name: string }) => ({ id: 1, ...user }) };
    const signUp = Transactional()(async (name: string) => mocked.save({ name }));
    await expect(signUp('ada')).resolves.toEqual({ id: 1, name: 'ada' });
    expect(probe.acquires).toBe(0);
    expect(probe.statements).toEqual([]);
  });

  it('integration tests: each test in a transaction rolled back (txscope/testing), the service’s transactions savepoints of it', async () => {
    const { db, probe, repos } = await setup();
    const committed: string[] = [];
    const signUp = db.transactional()(async (name: string) => {
      await addUser(repos, name);
      db.afterCommit(() => committed.push(name));
    });
    await withRollback(db, async () => {
      await signUp('ada');
      expect((await repos.users.find()).map((u) => u.name)).toEqual(['ada']);
      if (isolated) expect(await names('users')).toEqual([]);
    });
    expect(committed).toEqual(['ada']);
    expect(probe.statements.filter((s) => /^SAVEPOINT/i.test(s))).toHaveLength(1);
    expect(await names('users')).toEqual([]);
  });

  it('a data source may be created again (tests, hot reload): no registry to collide with', async () => {
    const { db, probe } = await setup();
    const first = await entityDataSource(db);
    const again = createDataSource(db, {
      type: db.dialect.name === 'mysql' ? 'mariadb' : undefined,
      entities: first.dataSource.options.entities ?? [],
    });
    await again.initialize();
    probe.reset();
    await db.transaction(async () => {
      await addUser(first.repos, 'one');
      await again.getRepository(first.fixture.User).save({ name: 'two' });
    });
    expect(await names('users')).toEqual(['one', 'two']);
    expect(begins(db, probe)).toBe(1);
  });
});

function begins(db: Database, probe: Probe): number {
  const begin = db.dialect.begin({ isolation: undefined, readOnly: false })[0];
  return probe.statements.filter((s) => s === begin).length;
}

it('every row of the migration table names a test that exists', async () => {
  const { readFile } = await import('node:fs/promises');
  const read = (path: string) => readFile(new URL(path, import.meta.url), 'utf8');
  const doc = await read('../../docs/migrating-from-typeorm-transactional.md');
  const files = { M: await read('./typeorm-migration.test.ts'), T: await read('./typeorm.test.ts') };
  const table = doc.slice(doc.indexOf('## From typeorm-transactional'), doc.indexOf('## A worked example'));
  const rows = table
    .split('\n')
    .filter((line) => /^\| [^-]/.test(line) && !line.startsWith('| typeorm-transactional |'));
  expect(rows.length).toBeGreaterThanOrEqual(20);
  for (const row of rows) {
    const cited = [...row.matchAll(/\b([MT]): "([^"]+?)(?:…)?"/g)];
    expect(cited.length, row).toBeGreaterThan(0);
    for (const [, file, name] of cited) {
      expect(files[file as 'M' | 'T'], `${file}: ${name}`).toContain(`'${name?.replace(/ …$/, '')}`);
    }
  }
});
