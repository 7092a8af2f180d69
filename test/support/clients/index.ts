/**
 * The integration clients under test (Kysely, Drizzle, Prisma), each seen through the same
 * repositories, so test/integrations.test.ts runs one suite over all of them.
 */
import { type Database, sql } from 'txscope';
import type { DriverEnv } from '../drivers.js';
import { idColumn } from '../schema.js';

/** Repositories: plain functions over one client; none of them takes a transaction. */
export interface Repos {
  createUser(name: string): Promise<number>;
  addOrder(userId: number, total: number): Promise<void>;
  audit(event: string): Promise<void>;
  userNames(): Promise<string[]>;
}

export interface Client {
  /** Repositories over the module-level client. */
  repos: Repos;
  /** The library's own transaction API (`kysely.transaction()`, `drizzle.transaction`, `prisma.$transaction`). */
  ownTransaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface ClientCase {
  name: 'kysely' | 'drizzle' | 'prisma' | 'typeorm' | 'knex';
  /**
   * Whether the module-level client joins the library's own transaction when called inside its
   * callback. Prisma runs `$transaction`'s callback itself, outside any boundary txscope could open.
   */
  callbackJoins: boolean;
  /** Whether the client wraps a single write in a transaction of its own on this database. */
  wrapsWrites(db: Database): boolean;
  create(db: Database): Client;
}

/** (Re)creates users, orders and audit in the database's dialect. */
export async function createSchema(db: Database): Promise<void> {
  const id = idColumn(db);
  await db.detached(async () => {
    for (const table of ['orders', 'audit', 'users'])
      await db.query(sql`drop table if exists ${sql.id(table)}`);
    await db.query(sql`create table users (id ${id}, name varchar(200) not null unique)`);
    await db.query(
      sql`create table orders (id ${id}, user_id int not null references users (id), total int not null)`,
    );
    await db.query(sql`create table audit (id ${id}, event varchar(200) not null)`);
  });
}

/** Empties the tables createSchema made. */
export async function clearSchema(db: Database): Promise<void> {
  await db.detached(async () => {
    for (const table of ['orders', 'audit', 'users']) await db.query(sql`delete from ${sql.id(table)}`);
  });
}

const ready = new WeakSet<DriverEnv>();

/** The schema, fresh and empty: created once per driver env (DDL is slow), emptied after that. */
export async function prepareSchema(env: DriverEnv, db: Database): Promise<void> {
  if (ready.has(env)) return clearSchema(db);
  await createSchema(db);
  ready.add(env);
}
