import { type Database, sql } from 'txscope';

/** An auto-increment primary key column's type in the database's dialect, as a fragment. */
export function idColumn(db: Database) {
  return raw(
    db.dialect.name === 'mysql'
      ? 'int auto_increment primary key'
      : db.dialect.name === 'sqlite'
        ? 'integer primary key autoincrement'
        : 'serial primary key',
  );
}

/** (Re)creates `items (id, tag, n)` in the database's dialect. */
export async function itemsTable(db: Database, name = 'items'): Promise<void> {
  const id = idColumn(db);
  await db.detached(async () => {
    await db.query(sql`drop table if exists ${sql.id(name)}`);
    await db.query(sql`create table ${sql.id(name)} (id ${id}, tag varchar(200) not null, n int)`);
  });
}

/** A statement that keeps the server busy for `seconds`, or null where the dialect has none. */
export function sleepStatement(db: Database, seconds: number): string | null {
  switch (db.dialect.name) {
    case 'postgres':
      return `select pg_sleep(${seconds})`;
    case 'mysql':
      return `select sleep(${seconds})`;
    default:
      return null;
  }
}

/** Inserts one row tagged `tag`. */
export function insertItem(db: Database, tag: string, n = 0) {
  return db.query(sql`insert into items (tag, n) values (${tag}, ${n})`);
}

// Only for fixed, test-owned text (column types): never user input.
function raw(text: string) {
  return sql([text] as unknown as TemplateStringsArray);
}

/** How many statements containing `marker` the server is running right now (PostgreSQL, MySQL). */
export async function runningStatements(
  observe: (text: string) => Promise<Record<string, unknown>[]>,
  dialect: string,
  marker: string,
): Promise<number> {
  const text =
    dialect === 'postgres'
      ? `select count(*) as n from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() and query like '%${marker}%'`
      : `select count(*) as n from information_schema.PROCESSLIST where COMMAND = 'Query' and ID <> CONNECTION_ID() and INFO like '%${marker}%'`;
  const rows = await observe(text);
  return Number(rows[0]?.n ?? 0);
}

/** Connections of this database left inside a transaction (PostgreSQL only; 0 elsewhere). */
export async function idleInTransaction(
  observe: (text: string) => Promise<Record<string, unknown>[]>,
  dialect: string,
): Promise<number> {
  if (dialect !== 'postgres') return 0;
  const rows = await observe(
    "select count(*) as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'",
  );
  return Number(rows[0]?.n ?? 0);
}
