import { asc } from 'drizzle-orm';
import * as my from 'drizzle-orm/mysql-core';
import * as pgc from 'drizzle-orm/pg-core';
import * as lite from 'drizzle-orm/sqlite-core';
import type { Database } from 'txscope';
import { createDrizzle } from 'txscope/drizzle';
import type { ClientCase, Repos } from './index.js';

export const pgSchema = {
  users: pgc.pgTable('users', {
    id: pgc.serial('id').primaryKey(),
    name: pgc.varchar('name', { length: 200 }).notNull(),
  }),
  orders: pgc.pgTable('orders', {
    id: pgc.serial('id').primaryKey(),
    userId: pgc.integer('user_id').notNull(),
    total: pgc.integer('total').notNull(),
  }),
  audit: pgc.pgTable('audit', {
    id: pgc.serial('id').primaryKey(),
    event: pgc.varchar('event', { length: 200 }).notNull(),
  }),
};

export const mysqlSchema = {
  users: my.mysqlTable('users', {
    id: my.int('id').autoincrement().primaryKey(),
    name: my.varchar('name', { length: 200 }).notNull(),
  }),
  orders: my.mysqlTable('orders', {
    id: my.int('id').autoincrement().primaryKey(),
    userId: my.int('user_id').notNull(),
    total: my.int('total').notNull(),
  }),
  audit: my.mysqlTable('audit', {
    id: my.int('id').autoincrement().primaryKey(),
    event: my.varchar('event', { length: 200 }).notNull(),
  }),
};

export const sqliteSchema = {
  users: lite.sqliteTable('users', {
    id: lite.integer('id').primaryKey({ autoIncrement: true }),
    name: lite.text('name').notNull(),
  }),
  orders: lite.sqliteTable('orders', {
    id: lite.integer('id').primaryKey({ autoIncrement: true }),
    userId: lite.integer('user_id').notNull(),
    total: lite.integer('total').notNull(),
  }),
  audit: lite.sqliteTable('audit', {
    id: lite.integer('id').primaryKey({ autoIncrement: true }),
    event: lite.text('event').notNull(),
  }),
};

export type PgOrm = ReturnType<typeof createDrizzle<typeof pgSchema>>;
export type MysqlOrm = ReturnType<typeof createDrizzle<typeof mysqlSchema>>;
export type SqliteOrm = ReturnType<typeof createDrizzle<typeof sqliteSchema>>;

// Drizzle's databases share no base type across dialects: one set of repositories per dialect.
function pgRepos(orm: PgOrm | pgc.PgTransaction<never, typeof pgSchema, never>): Repos {
  const s = pgSchema;
  const o = orm as PgOrm;
  return {
    async createUser(name) {
      const [row] = await o.insert(s.users).values({ name }).returning({ id: s.users.id });
      return (row as { id: number }).id;
    },
    async addOrder(userId, total) {
      await o.insert(s.orders).values({ userId, total });
    },
    async audit(event) {
      await o.insert(s.audit).values({ event });
    },
    async userNames() {
      return (await o.select({ name: s.users.name }).from(s.users).orderBy(asc(s.users.id))).map(
        (r) => r.name,
      );
    },
  };
}

function mysqlRepos(orm: MysqlOrm): Repos {
  const s = mysqlSchema;
  return {
    async createUser(name) {
      const [row] = await orm.insert(s.users).values({ name }).$returningId();
      return (row as { id: number }).id;
    },
    async addOrder(userId, total) {
      await orm.insert(s.orders).values({ userId, total });
    },
    async audit(event) {
      await orm.insert(s.audit).values({ event });
    },
    async userNames() {
      return (await orm.select({ name: s.users.name }).from(s.users).orderBy(asc(s.users.id))).map(
        (r) => r.name,
      );
    },
  };
}

function sqliteRepos(orm: SqliteOrm): Repos {
  const s = sqliteSchema;
  return {
    async createUser(name) {
      const [row] = await orm.insert(s.users).values({ name }).returning({ id: s.users.id });
      return (row as { id: number }).id;
    },
    async addOrder(userId, total) {
      await orm.insert(s.orders).values({ userId, total });
    },
    async audit(event) {
      await orm.insert(s.audit).values({ event });
    },
    async userNames() {
      return (await orm.select({ name: s.users.name }).from(s.users).orderBy(asc(s.users.id))).map(
        (r) => r.name,
      );
    },
  };
}

/** The Drizzle database for `db`'s dialect, with repositories over it and over its transactions. */
export function drizzleFor(db: Database): {
  orm: PgOrm | MysqlOrm | SqliteOrm;
  repos: Repos;
  ownTransaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T>;
} {
  switch (db.dialect.name) {
    case 'postgres': {
      const orm = createDrizzle(db, { schema: pgSchema });
      return {
        orm,
        repos: pgRepos(orm),
        ownTransaction: (fn) => orm.transaction((tx) => fn(pgRepos(tx as never))),
      };
    }
    case 'mysql': {
      const orm = createDrizzle(db, { schema: mysqlSchema });
      return {
        orm,
        repos: mysqlRepos(orm),
        ownTransaction: (fn) => orm.transaction((tx) => fn(mysqlRepos(tx as never))),
      };
    }
    case 'sqlite': {
      const orm = createDrizzle(db, { schema: sqliteSchema });
      return {
        orm,
        repos: sqliteRepos(orm),
        ownTransaction: (fn) => orm.transaction((tx) => fn(sqliteRepos(tx as never))),
      };
    }
  }
}

export const drizzleCase: ClientCase = {
  name: 'drizzle',
  callbackJoins: true,
  wrapsWrites: () => false,
  create(db) {
    const { repos, ownTransaction } = drizzleFor(db);
    return { repos, ownTransaction, close: async () => {} };
  },
};
