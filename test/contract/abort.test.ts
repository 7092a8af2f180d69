/** Rule 16: a scope's AbortSignal rolls back its open transaction and rejects its statements. */

import { sql } from 'txscope';
import { expect, it } from 'vitest';
import { forEachDriver, until } from '../support/drivers.js';
import { insertItem, itemsTable, runningStatements, sleepStatement } from '../support/schema.js';

forEachDriver('abort', (env) => {
  const observe = (text: string) => env.observe<Record<string, unknown>>(text);

  it('aborting mid-transaction rolls it back, frees the connection, and rejects later statements ERR_ABORTED', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    const controller = new AbortController();
    let later: Promise<unknown> | undefined;
    let resume!: () => void;
    const paused = new Promise<void>((resolve) => {
      resume = resolve;
    });
    const scope = db.scope(
      () =>
        db.transaction(async () => {
          await insertItem(db, 'aborted');
          controller.abort(new Error('client went away'));
          await paused;
          later = insertItem(db, 'later');
          await later;
        }),
      { signal: controller.signal },
    );
    await expect(scope).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await until(() => probe.checkedOut === 0, 5000, 'release');
    resume();
    await until(() => later !== undefined, 5000, 'the later statement');
    await expect(later).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(probe.statements.filter((s) => s.startsWith('insert'))).toHaveLength(1);
    expect(await env.observe('select tag from items')).toEqual([]);
  });

  it.runIf(
    env.name === 'pg' || env.name === 'pgbouncer' || env.name === 'postgresjs' || env.name === 'mysql',
  )('a statement in flight when the scope aborts is cancelled and rejects ERR_ABORTED', async () => {
    const { db, probe } = env.createDb();
    await itemsTable(db);
    const controller = new AbortController();
    const marker = db.dialect.name === 'postgres' ? 'pg_sleep(29)' : 'sleep(29)';
    const scope = db.scope(
      () =>
        db.transaction(async () => {
          await insertItem(db, 'aborted');
          await db.query(sleepStatement(db, 29) as string);
        }),
      { signal: controller.signal },
    );
    await until(async () => (await runningStatements(observe, db.dialect.name, marker)) === 1, 5000, 'sleep');
    controller.abort();
    await expect(scope).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await until(
      async () => (await runningStatements(observe, db.dialect.name, marker)) === 0,
      5000,
      'cancel',
    );
    await until(() => probe.checkedOut === 0, 5000, 'release');
    expect(await env.observe('select tag from items')).toEqual([]);
  });

  it('a scope whose signal is already aborted never runs fn', async () => {
    const { db, probe } = env.createDb();
    let ran = false;
    await expect(
      db.scope(
        async () => {
          ran = true;
          await db.query(sql`select 1 as one`);
        },
        { signal: AbortSignal.abort() },
      ),
    ).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(ran).toBe(false);
    expect(probe.statements).toEqual([]);
  });
});

forEachDriver('abort and the next borrower', (env) => {
  it.runIf(env.name === 'pg' || env.name === 'pgbouncer' || env.name === 'postgresjs')(
    'a cancel sent for an aborted scope never lands on the next borrower of the connection',
    async () => {
      const { db } = env.createDb({ max: 1 });
      const failures: string[] = [];
      for (let attempt = 0; attempt < 20; attempt++) {
        const controller = new AbortController();
        const aborted = db
          .scope(
            () =>
              db.transaction(async () => {
                const running = db.query('select pg_sleep(0.003)');
                setTimeout(() => controller.abort(), 1);
                await running;
                await db.query('select 1');
              }),
            { signal: controller.signal },
          )
          .catch(() => 'aborted');
        // Waits for the one connection, then runs while a late cancel could still arrive.
        const unrelated = db
          .transaction(() => db.query('select pg_sleep(0.05)'))
          .then(
            () => 'ok',
            (error: { code?: string }) => failures.push(String(error.code)),
          );
        await Promise.all([aborted, unrelated]);
      }
      expect(failures).toEqual([]);
    },
  );
});
