/**
 * The setup of the driver suites that watch the wire: a fresh PostgreSQL database with an `items`
 * table, an observer connection straight to it, the fault proxy in front of it (no fault between
 * tests), and the databases a test made, closed after it.
 */
import pgLib from 'pg';
import type { Database } from 'txscope';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { type FreshDatabase, freshPgDatabase } from './databases.js';
import { type FaultProxy, startProxy } from './proxy.js';

export interface WireFixture {
  readonly fresh: FreshDatabase;
  readonly observer: pgLib.Pool;
  readonly proxy: FaultProxy;
  /** Closes `db` after the test. */
  track(db: Database): Database;
}

/** Registers the file's hooks; the fields are there from `beforeAll` on. */
export function useWireFixture(): WireFixture {
  let fresh: FreshDatabase | undefined;
  let observer: pgLib.Pool | undefined;
  let proxy: FaultProxy | undefined;
  const open: Database[] = [];

  beforeAll(async () => {
    fresh = await freshPgDatabase();
    observer = new pgLib.Pool({ connectionString: fresh.url, max: 2 });
    await observer.query('create table items (id serial primary key, tag text not null)');
    const target = new URL(fresh.url);
    proxy = await startProxy({ target: { host: target.hostname, port: Number(target.port || 5432) } });
  });
  afterAll(async () => {
    await proxy?.close();
    await observer?.end();
    await fresh?.drop();
  });
  beforeEach(async () => {
    proxy?.setFault(null);
    await observer?.query('truncate items');
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.close()));
  });

  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the wire fixture is used before its beforeAll ran');
    return value;
  };
  return {
    get fresh() {
      return ready(fresh);
    },
    get observer() {
      return ready(observer);
    },
    get proxy() {
      return ready(proxy);
    },
    track(db) {
      open.push(db);
      return db;
    },
  };
}
