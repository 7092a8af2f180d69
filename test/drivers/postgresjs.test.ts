/**
 * What only the postgres.js driver does, proved on the wire (through the fault proxy): round
 * trips with and without prepared statements, the protocol-level cancel, postgres.js's own type
 * parsing, a `Sql` the application already has, and what `sql.begin` next to txscope means.
 */
import postgres from 'postgres';
import { createDatabase, type Database, sql } from 'txscope';
import { type PostgresJsOptions, type PostgresJsSqlLike, postgresjs } from 'txscope/postgresjs';
import { describe, expect, it } from 'vitest';
import { until } from '../support/drivers.js';
import type { ProxyMessage } from '../support/proxy.js';
import { useWireFixture } from '../support/wire.js';

const wire = useWireFixture();

function makeDb(options: Omit<PostgresJsOptions, 'url'> = {}): Database {
  const db = createDatabase({
    driver: postgresjs({ url: wire.proxy.url(wire.fresh.url), max: 1, onnotice: () => {}, ...options }),
  });
  wire.track(db);
  return db;
}

const insert = (db: Database, tag: string) => db.query(sql`insert into items (tag) values (${tag})`);

async function tags(): Promise<string[]> {
  const { rows } = await wire.observer.query<{ tag: string }>('select tag from items order by id');
  return rows.map((r) => r.tag);
}

const fromClient = (messages: readonly ProxyMessage[]) =>
  messages.filter((m) => m.direction === 'client-to-server');

/**
 * Round trips: the client's writes. Inside a transaction txscope waits for each statement before
 * the next, so every write waits for an answer (postgres.js's Describe-then-Bind is two writes).
 */
const roundTrips = (messages: readonly ProxyMessage[]): number =>
  new Set(fromClient(messages).map((m) => `${m.connection.id}:${m.chunk}`)).size;

/** The message types of each client write, in order: `Q`, `P D H`, `B E S`, … */
const writes = (messages: readonly ProxyMessage[]): string[] => {
  const byChunk = new Map<string, string[]>();
  for (const m of fromClient(messages)) {
    const key = `${m.connection.id}:${m.chunk}`;
    byChunk.set(key, [...(byChunk.get(key) ?? []), m.type]);
  }
  return [...byChunk.values()].map((types) => types.join(' '));
};

const fourInserts = (db: Database) =>
  db.transaction(async () => {
    for (const tag of ['a', 'b', 'c', 'd']) await insert(db, tag);
  });

describe('txscope/postgresjs on the wire', () => {
  it('a transaction of k statements takes k + 2 round trips once its statements are prepared on the connection', async () => {
    const db = makeDb();
    await db.query('select 1'); // the connection is open (and its types fetched) before recording
    const first = wire.proxy.record();
    await fourInserts(db);
    first.stop();
    // The first time: the statement is parsed and described (its parameter types), then bound.
    expect(writes(first.messages)).toEqual(['Q', 'P D H', 'B E S', 'B E S', 'B E S', 'B E S', 'Q']);
    expect(roundTrips(first.messages)).toBe(4 + 3);
    const again = wire.proxy.record();
    await fourInserts(db);
    again.stop();
    // Prepared and cached on the connection: one write per statement, BEGIN and COMMIT simple queries.
    expect(writes(again.messages)).toEqual(['Q', 'B E S', 'B E S', 'B E S', 'B E S', 'Q']);
    expect(roundTrips(again.messages)).toBe(4 + 2);
    expect(
      fromClient(again.messages)
        .filter((m) => m.type === 'Q')
        .map((m) => m.text),
    ).toEqual(['BEGIN', 'COMMIT']);
    expect(await tags()).toEqual(['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd']);
  });

  it('prepare: false (PgBouncer in transaction mode): nothing named, two round trips per bound statement', async () => {
    const db = makeDb({ prepare: false });
    await db.query('select 1');
    await fourInserts(db);
    const trace = wire.proxy.record();
    await fourInserts(db);
    trace.stop();
    expect(roundTrips(trace.messages)).toBe(2 * 4 + 2);
    // Unnamed statements only: a Parse naming a statement would not survive PgBouncer handing the
    // next transaction another server connection.
    const parses = fromClient(trace.messages).filter((m) => m.type === 'P');
    expect(parses).toHaveLength(4);
    for (const parse of parses) expect(parse.bytes.readUInt8(5)).toBe(0); // empty statement name
    expect(await tags()).toHaveLength(8);
  });

  it('statements without parameters are simple queries, one round trip, and may hold several statements', async () => {
    const db = makeDb();
    await db.query('select 1');
    const trace = wire.proxy.record();
    await db.transaction(() =>
      db.query("insert into items (tag) values ('s1'); insert into items (tag) values ('s2')"),
    );
    trace.stop();
    expect(writes(trace.messages)).toEqual(['Q', 'Q', 'Q']);
    expect(await tags()).toEqual(['s1', 's2']);
  });

  it('a timeout cancels the running statement with a CancelRequest of its own, then rolls back', async () => {
    const db = makeDb();
    const trace = wire.proxy.record();
    const result = db.transaction(() => db.query('select pg_sleep(30)'), { timeoutMs: 200 });
    await expect(result).rejects.toMatchObject({ code: 'ERR_TRANSACTION_TIMEOUT' });
    trace.stop();
    expect(trace.messages.some((m) => m.type === 'CancelRequest')).toBe(true);
    const { rows } = await wire.observer.query(
      "select 1 from pg_stat_activity where query like 'select pg_sleep(30)%' and state = 'active'",
    );
    expect(rows).toEqual([]);
    // The connection went back clean.
    await db.transaction(() => insert(db, 'after'));
    expect(await tags()).toEqual(['after']);
  });
});

describe('txscope/postgresjs pool', () => {
  it('an autocommit statement still queued at acquireTimeoutMillis rejects ERR_POOL_TIMEOUT and never runs', async () => {
    const db = makeDb({ acquireTimeoutMillis: 200 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding!: () => void;
    const started = new Promise<void>((resolve) => {
      holding = resolve;
    });
    const holder = db.transaction(async () => {
      await insert(db, 'holder');
      holding();
      await held;
    });
    await started;
    const error = await insert(db, 'late').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_POOL_TIMEOUT' });
    expect((error as Error).message).toMatch(/pool of 1, 1 open, 0 idle/);
    release();
    await holder;
    // Taken out of postgres.js's queue: it did not run once the connection came free.
    await db.query('select 1');
    expect(await tags()).toEqual(['holder']);
  });
});

describe('txscope/postgresjs types', () => {
  it("rows are parsed by postgres.js's own parsers", async () => {
    const db = makeDb();
    const { rows } = await db.query<Record<string, unknown>>(
      `select 1::int4 as int4, 9007199254740993::int8 as int8, 1.50::numeric as numeric, 2.5::float8 as float8,
        true as bool, '{"a":1}'::jsonb as jsonb, '2026-01-02T03:04:05Z'::timestamptz as timestamptz,
        array[1,2,3]::int4[] as ints, '\\x0102'::bytea as bytea, null::text as nothing`,
    );
    const row = rows[0] as Record<string, unknown>;
    expect(row.int4).toBe(1);
    // Like node-postgres: int8 and numeric stay strings (no precision lost).
    expect(row.int8).toBe('9007199254740993');
    expect(row.numeric).toBe('1.50');
    expect(row.float8).toBe(2.5);
    expect(row.bool).toBe(true);
    expect(row.jsonb).toEqual({ a: 1 });
    expect(row.timestamptz).toEqual(new Date('2026-01-02T03:04:05Z'));
    expect(row.ints).toEqual([1, 2, 3]);
    expect(row.bytea).toEqual(Buffer.from([1, 2]));
    expect(row.nothing).toBeNull();
  });

  it('values are serialized by the types the server described', async () => {
    const db = makeDb();
    const when = new Date('2026-05-06T07:08:09.010Z');
    const { rows } = await db.query<Record<string, unknown>>(
      sql`select ${when}::timestamptz as at, ${{ b: [1] }}::jsonb as doc, ${10n}::int8 + 1 as big, ${'x'}::text as t`,
    );
    expect(rows[0]).toEqual({ at: when, doc: { b: [1] }, big: '11', t: 'x' });
    // postgres.js refuses undefined (node-postgres sends null): the driver's error, unchanged.
    await expect(db.query('select $1::text as t', [undefined])).rejects.toMatchObject({
      code: 'UNDEFINED_VALUE',
    });
  });
});

describe('txscope/postgresjs with a Sql of its own', () => {
  it('runs on a Sql the application already has, and db.close() ends it', async () => {
    const closedIds: number[] = [];
    const existing = postgres(wire.proxy.url(wire.fresh.url), {
      max: 2,
      onnotice: () => {},
      onclose: (id: number) => closedIds.push(id),
    });
    const db = createDatabase({ driver: postgresjs(existing as unknown as PostgresJsSqlLike) });
    expect(db.stats().pool.max).toBe(2);
    await db.transaction(() => insert(db, 'mine'));
    // The application's own queries on it go on as before.
    expect(await existing`select count(*)::int as n from items`).toEqual([{ n: 1 }]);
    await db.close();
    await expect(existing`select 1`).rejects.toMatchObject({ code: 'CONNECTION_ENDED' });
    // Its own onclose still hears about its connections (txscope's listener is chained to it).
    await until(() => closedIds.length > 0, 5000, 'onclose');
  });

  it('sql.begin is postgres.js’s own transaction on another connection: it is not part of the txscope one', async () => {
    const existing = postgres(wire.fresh.url, { max: 2, onnotice: () => {} });
    const db = createDatabase({ driver: postgresjs(existing as unknown as PostgresJsSqlLike) });
    wire.track(db);
    await expect(
      db.transaction(async () => {
        await insert(db, 'txscope');
        await existing.begin((tx) => tx`insert into items (tag) values ('sql.begin')`);
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    // The txscope transaction rolled back; what sql.begin committed stays.
    expect(await tags()).toEqual(['sql.begin']);
  });

  it('never shows the password: label and pool-timeout message name database and host only', async () => {
    const url = new URL(wire.proxy.url(wire.fresh.url));
    url.password = 'S3cretPassw0rd';
    const driver = postgresjs({ url: url.href, max: 1, acquireTimeoutMillis: 100 });
    expect(driver.label).not.toContain('S3cret');
    const existing = postgres(url.href, { max: 1 });
    const fromSql = postgresjs(existing as unknown as PostgresJsSqlLike);
    expect(fromSql.label).toBe(`${url.pathname.slice(1)}@${url.hostname}:${url.port}`);
    await existing.end();
    await driver.close();
  });
});
