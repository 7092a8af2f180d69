/** Rule 18: diagnostics channels, stats, leak detection, and no password anywhere. */
import diagnostics from 'node:diagnostics_channel';
import { createDatabase, type LeakEvent, sql } from 'txscope';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { forEachDriver, until } from '../support/drivers.js';
import { postgresServerDriver, postgresServerDrivers } from '../support/postgresjs-case.js';
import { insertItem, itemsTable } from '../support/schema.js';

const names = ['query', 'acquire', 'release', 'begin', 'commit', 'rollback', 'error', 'leak'] as const;
const events: Array<{ channel: string; message: Record<string, unknown> }> = [];
const listeners = names.map((name) => {
  const listener = (message: unknown) =>
    events.push({ channel: name, message: message as Record<string, unknown> });
  return [`txscope:${name}`, listener] as const;
});
const warnings: Error[] = [];
const onWarning = (warning: Error) => warnings.push(warning);

beforeEach(() => {
  for (const [channel, listener] of listeners) diagnostics.subscribe(channel, listener);
  process.on('warning', onWarning);
});
afterEach(() => {
  for (const [channel, listener] of listeners) diagnostics.unsubscribe(channel, listener);
  process.off('warning', onWarning);
  events.length = 0;
  warnings.length = 0;
});

forEachDriver('observability', (env) => {
  it('channels carry statement text without values, durations, database name, scope and transaction ids', async () => {
    const { db } = env.createDb({ name: 'orders' });
    await itemsTable(db);
    events.length = 0;
    const secret = 'value-that-must-not-leak';
    let scopeId: number | undefined;
    await db.scope(async () => {
      scopeId = db.current.scope?.id;
      await db.transaction(async () => {
        await insertItem(db, secret);
        await db.query(sql`select count(*) as c from items where tag = ${secret}`);
      });
    });
    const byChannel = (name: string) => events.filter((e) => e.channel === name).map((e) => e.message);
    const queries = byChannel('query');
    expect(queries.length).toBe(4); // BEGIN, insert, select, COMMIT
    for (const q of queries) {
      expect(q).toMatchObject({ database: 'orders', scopeId, transactionId: expect.any(Number) });
      expect(typeof q.durationMs).toBe('number');
      expect(typeof q.text).toBe('string');
    }
    expect(byChannel('begin')).toHaveLength(1);
    expect(byChannel('commit')[0]).toMatchObject({
      database: 'orders',
      scopeId,
      durationMs: expect.any(Number),
    });
    expect(byChannel('acquire')).toHaveLength(1);
    expect(byChannel('release')[0]).toMatchObject({ destroyed: false });
    expect(JSON.stringify(events)).not.toContain(secret);
  });

  it('rollback events say why', async () => {
    const { db } = env.createDb();
    await itemsTable(db);
    events.length = 0;
    await db
      .transaction(async () => {
        await insertItem(db, 'x');
        throw new Error('no');
      })
      .catch(() => {});
    expect(events.find((e) => e.channel === 'rollback')?.message).toMatchObject({ reason: 'error' });
  });

  it('leakDetectionMs reports a connection held too long, with the stack where its transaction began', async () => {
    const { db } = env.createDb({ leakDetectionMs: 50 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const work = db.transaction(async function holdsTheConnectionTooLong() {
      await db.query(sql`select 1 as one`);
      await held;
    });
    await until(() => events.some((e) => e.channel === 'leak'), 5000, 'a leak report');
    const leak = events.find((e) => e.channel === 'leak')?.message as unknown as LeakEvent;
    expect(leak.heldMs).toBe(50);
    expect(leak.stack).toContain('observability.test.ts');
    await until(() => warnings.some((w) => /held for more than 50 ms/.test(w.message)), 5000, 'a warning');
    release();
    await work;
  });

  it("boundary events: one object from start to end, the attempt's transaction id, frames", async () => {
    const { db } = env.createDb({ name: 'framed' });
    await itemsTable(db);
    events.length = 0;
    const seen: Array<{ channel: string; message: Record<string, unknown>; snapshot: string }> = [];
    const subscriptions = ['boundary:start', 'boundary:attempt', 'boundary:end', 'frame'].map((name) => {
      const listener = (message: unknown) =>
        seen.push({
          channel: name,
          message: message as Record<string, unknown>,
          snapshot: JSON.stringify({ ...(message as object), error: undefined }),
        });
      diagnostics.subscribe(`txscope:${name}`, listener);
      return () => diagnostics.unsubscribe(`txscope:${name}`, listener);
    });
    try {
      const outcome = db.transaction(async () => {
        await insertItem(db, 'outer');
        await db
          .transaction(
            async () => {
              await insertItem(db, 'savepoint');
              throw new Error('savepoint frame');
            },
            { propagation: 'nested' },
          )
          .catch(() => undefined);
        await db
          .transaction(async () => {
            throw new Error('joined frame');
          })
          .catch(() => undefined);
      });
      await expect(outcome).rejects.toMatchObject({ code: 'ERR_ROLLBACK_ONLY' });
    } finally {
      for (const unsubscribe of subscriptions) unsubscribe();
    }
    expect(seen.map((e) => e.channel)).toEqual([
      'boundary:start',
      'boundary:attempt',
      'frame',
      'frame',
      'frame',
      'boundary:end',
    ]);
    const [start, attempt, sp, back, only, end] = seen as [(typeof seen)[number], ...(typeof seen)[number][]];
    expect(attempt?.message).toBe(start.message);
    expect(end?.message).toBe(start.message);
    expect(JSON.parse(start.snapshot)).toMatchObject({ database: 'framed', attempt: 0, transactionId: null });
    const begin = events.find((e) => e.channel === 'begin')?.message;
    expect(JSON.parse(attempt?.snapshot ?? '{}')).toMatchObject({
      attempt: 1,
      transactionId: begin?.transactionId,
    });
    expect(sp?.message).toMatchObject({ action: 'savepoint', transactionId: begin?.transactionId });
    expect(back?.message).toMatchObject({ action: 'rollback_to', savepoint: sp?.message.savepoint });
    expect(only?.message).toMatchObject({ action: 'rollback_only' });
    expect(end?.message).toMatchObject({
      durationMs: expect.any(Number),
      error: { code: 'ERR_ROLLBACK_ONLY' },
    });
  });

  it("acquire events carry the driver pool's counts", async () => {
    const { db } = env.createDb({ name: 'counted' });
    await itemsTable(db);
    events.length = 0;
    if (!env.capabilities.multiConnection) return;
    await db.transaction(async () => {
      await insertItem(db, 'held');
      await db.transaction(() => insertItem(db, 'second'), { propagation: 'requires_new' });
    });
    const acquires = events.filter((e) => e.channel === 'acquire').map((e) => e.message);
    expect(acquires).toHaveLength(2);
    for (const a of acquires)
      expect(a.pool).toMatchObject({ max: expect.any(Number), total: expect.any(Number) });
  });
});

it.each(postgresServerDrivers)(
  '%s: a password in the connection string appears in no error, event, warning or stats, even on a failed connect',
  async (driver) => {
    const password = 'Sup3rSecretPassw0rd';
    const db = createDatabase({
      driver: postgresServerDriver(driver, {
        url: `postgres://nobody:${password}@127.0.0.1:1/nowhere`,
        acquireTimeoutMillis: 2000,
      }),
      name: 'unreachable',
      leakDetectionMs: 10,
    });
    const error = await db.query(sql`select 1`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    const seen = [
      String(error),
      (error as Error).stack ?? '',
      JSON.stringify(error, Object.getOwnPropertyNames(error)),
      JSON.stringify(events, (_k, v: unknown) =>
        v instanceof Error ? { message: v.message, stack: v.stack } : v,
      ),
      JSON.stringify(db.stats()),
      warnings.map((w) => w.message).join('\n'),
    ].join('\n');
    expect(seen).not.toContain(password);
    await db.close();
  },
);

forEachDriver('observability (connected)', (env) => {
  it.runIf(env.name === 'pg' || env.name === 'pgbouncer' || env.name === 'postgresjs')(
    'a password of a working connection string leaks nowhere either',
    async () => {
      const password = 'An0therSecretPassw0rd';
      const url = new URL(env.url as string);
      url.password = password; // trust authentication ignores it
      const db = createDatabase({
        driver: postgresServerDriver(env.name === 'pgbouncer' ? 'pg' : env.name, { url: url.href }),
        name: 'with-password',
      });
      await db
        .transaction(async () => {
          await db.query(sql`select 1 as one`);
          await db.query('select * from no_such_table').catch(() => {});
        })
        .catch((e: unknown) => events.push({ channel: 'caught', message: { error: String(e) } }));
      const text = JSON.stringify(events, (_k, v: unknown) =>
        v instanceof Error ? { m: v.message, s: v.stack } : v,
      );
      expect(text).not.toContain(password);
      expect(JSON.stringify(db.stats())).not.toContain(password);
      await db.close();
    },
  );
});
