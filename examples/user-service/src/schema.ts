import type { Generated } from 'kysely';
import { sql } from 'txscope';
import { db } from './db.js';

export interface Schema {
  users: { id: Generated<number>; email: string; name: string; created_at: Generated<Date> };
  profiles: { user_id: number; bio: string };
  audit_log: { id: Generated<number>; user_id: number | null; action: string; at: Generated<Date> };
  accounts: { id: Generated<number>; owner: string; balance: number };
}

/** Creates the tables when they are missing and seeds three accounts; safe to run at every start. */
export async function migrate(): Promise<void> {
  await db.detached(() =>
    db.transaction(async () => {
      await db.query(sql`create table if not exists users (
        id serial primary key,
        email text not null unique,
        name text not null,
        created_at timestamptz not null default now())`);
      await db.query(sql`create table if not exists profiles (
        user_id int primary key references users (id),
        bio text not null default '')`);
      await db.query(sql`create table if not exists audit_log (
        id serial primary key,
        user_id int references users (id),
        action text not null,
        at timestamptz not null default now())`);
      await db.query(sql`create table if not exists accounts (
        id serial primary key,
        owner text not null,
        balance int not null check (balance >= 0))`);
      await db.query(sql`insert into accounts (owner, balance)
        select owner, 1000 from (values ('alice'), ('bob'), ('carol')) as seed (owner)
        where not exists (select 1 from accounts)`);
    }),
  );
}
