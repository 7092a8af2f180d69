/**
 * What only the node-postgres driver does, proved on the wire (through the fault proxy): BEGIN
 * travels with a transaction's first statement, so k statements take k + 1 round trips, and a
 * failed BEGIN keeps the statement from running; autocommit statements run take-run-give-back
 * in one call and never leave a transaction open on a pooled connection.
 */
import { createDatabase, type Database, sql } from 'txscope';
import { pg } from 'txscope/pg';
import { describe, expect, it } from 'vitest';
import type { ProxyMessage } from '../support/proxy.js';
import { useWireFixture } from '../support/wire.js';

const wire = useWireFixture();

function makeDb(max = 1): Database {
  const db = createDatabase({ driver: pg({ connectionString: wire.proxy.url(wire.fresh.url), max }) });
  wire.track(db);
  return db;
}

const insert = (db: Database, tag: string) => db.query(sql`insert into items (tag) values (${tag})`);

async function tags(): Promise<string[]> {
  const { rows } = await wire.observer.query<{ tag: string }>('select tag from items order by id');
  return rows.map((r) => r.tag);
}

/** The SQL the client sent (simple queries and Parse messages), in order. */
const sent = (messages: readonly ProxyMessage[]): string[] =>
  messages
    .filter((m) => m.direction === 'client-to-server' && (m.type === 'Q' || m.type === 'P'))
    .map((m) => m.text);

/** Round trips: one ReadyForQuery answers each synchronised request. */
const roundTrips = (messages: readonly ProxyMessage[]): number =>
  messages.filter((m) => m.direction === 'server-to-client' && m.type === 'Z').length;

describe('txscope/pg on the wire', () => {
  it('a transaction of k statements sends k + 2 statements in k + 1 round trips: BEGIN rides with the first', async () => {
    const db = makeDb();
    await db.query('select 1'); // the connection is open and idle in the pool before recording
    const trace = wire.proxy.record();
    await db.transaction(async () => {
      for (const tag of ['a', 'b', 'c', 'd']) await insert(db, tag);
    });
    trace.stop();
    expect(sent(trace.messages)).toEqual([
      'BEGIN',
      ...Array.from({ length: 4 }, () => 'insert into items (tag) values ($1)'),
      'COMMIT',
    ]);
    expect(roundTrips(trace.messages)).toBe(5);
    // One network write carries BEGIN's Parse, Bind, Execute and the statement's, behind one Sync.
    const first = trace.messages.filter(
      (m) => m.direction === 'client-to-server' && m.chunk === trace.messages[0]?.chunk,
    );
    expect(first.map((m) => m.type)).toEqual(['P', 'B', 'E', 'P', 'B', 'D', 'E', 'S']);
    expect(await tags()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a first statement without parameters rides with BEGIN too; a script of several waits for it', async () => {
    const db = makeDb();
    await db.query('select 1');
    const trace = wire.proxy.record();
    await db.transaction(() => db.query("insert into items (tag) values ('plain')"));
    await db.transaction(() =>
      db.query("insert into items (tag) values ('s1'); insert into items (tag) values ('s2')"),
    );
    trace.stop();
    // 2 round trips for the first transaction, 3 for the second (BEGIN alone, then the script).
    expect(roundTrips(trace.messages)).toBe(5);
    expect(await tags()).toEqual(['plain', 's1', 's2']);
  });

  it('a failed BEGIN keeps the statement from running: nothing of it ever runs in autocommit', async () => {
    const db = makeDb();
    await db.query('select 1');
    // The server receives a BEGIN it cannot parse: it answers with an error and skips everything
    // up to the Sync, the statement that rode with BEGIN included.
    wire.proxy.setFault({
      when: (m) => m.type === 'P' && m.text === 'BEGIN',
      action: { rewrite: { from: 'BEGIN', to: 'BEGIX' } },
    });
    const trace = wire.proxy.record();
    let second: unknown;
    const outcome = await db
      .transaction(async () => {
        await insert(db, 'first').catch(() => {});
        second = await insert(db, 'second').catch((error: unknown) => error);
      })
      .catch((error: unknown) => error);
    trace.stop();
    expect(outcome).toMatchObject({ code: '42601' });
    expect(second).toMatchObject({ code: '42601' });
    expect(await tags()).toEqual([]);
    // The second statement was refused by txscope: it never reached the server.
    expect(sent(trace.messages).filter((text) => text.startsWith('insert'))).toEqual([
      'insert into items (tag) values ($1)',
    ]);
    // The connection went back clean: the next transaction works on it.
    await db.transaction(() => insert(db, 'after'));
    expect(await tags()).toEqual(['after']);
  });
});

describe('txscope/pg autocommit', () => {
  it('a statement that leaves a transaction open is rolled back before its connection is pooled again', async () => {
    const db = makeDb(1);
    await db.query('begin');
    await insert(db, 'autocommit');
    // Had the first statement's transaction stayed open, the insert would have joined it, unseen.
    expect(await tags()).toEqual(['autocommit']);
    const { rows } = await db.query<{ status: string }>("select 'idle' as status");
    expect(rows).toEqual([{ status: 'idle' }]);
  });

  it('a statement takes one connection and gives it back: counts stay exact', async () => {
    const db = makeDb(2);
    await Promise.all(['x', 'y', 'z'].map((tag) => insert(db, tag)));
    const stats = db.stats();
    expect(stats).toMatchObject({ checkedOut: 0, acquired: 3, released: 3, destroyed: 0, statements: 3 });
    expect((await tags()).sort()).toEqual(['x', 'y', 'z']);
  });
});
