// The benchmark database: created on first use, schema idempotent, seed tables filled once.
// `users`, `profiles`, `audit_log` and `accounts` are the example app's own tables (same DDL), so
// workload 3 runs the example unchanged against the same database.
import pg from 'pg';
import { adminUrl, benchDatabase, benchUrl, seedRows } from './config.mjs';

const ddl = [
  `create table if not exists users (
    id serial primary key,
    email text not null unique,
    name text not null,
    created_at timestamptz not null default now())`,
  `create table if not exists profiles (
    user_id int primary key references users (id),
    bio text not null default '')`,
  `create table if not exists audit_log (
    id serial primary key,
    user_id int references users (id),
    action text not null,
    at timestamptz not null default now())`,
  `create table if not exists accounts (
    id serial primary key,
    owner text not null,
    balance int not null check (balance >= 0))`,
  'create table if not exists seed_users (id int primary key, email text not null, name text not null)',
  'create table if not exists seed_profiles (user_id int primary key, bio text not null)',
  'create table if not exists seed_accounts (id int primary key, owner text not null, balance int not null)',
];

/**
 * Runs `fn` with a client connected to `url`.
 * @template T
 * @param {string} url
 * @param {(client: pg.Client) => Promise<T>} fn
 * @returns {Promise<T>}
 */
async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Creates `txscope_bench` when missing, then its tables and seed rows. */
export async function prepareDatabase() {
  await withClient(adminUrl(), async (client) => {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [benchDatabase]);
    if (rowCount === 0) await client.query(`create database ${benchDatabase}`);
  });
  await withClient(benchUrl(), async (client) => {
    for (const statement of ddl) await client.query(statement);
    const { rows } = await client.query('select count(*)::int as n from seed_accounts');
    if (rows[0].n !== seedRows) {
      await client.query('begin');
      await client.query('truncate seed_users, seed_profiles, seed_accounts');
      await client.query(
        `insert into seed_users select i, 'seed' || i || '@bench.test', 'Seed ' || i from generate_series(1, $1) i`,
        [seedRows],
      );
      await client.query(`insert into seed_profiles select i, 'bio ' || i from generate_series(1, $1) i`, [
        seedRows,
      ]);
      await client.query(
        `insert into seed_accounts select i, 'owner ' || i, 1000 from generate_series(1, $1) i`,
        [seedRows],
      );
      await client.query('commit');
      await client.query('analyze seed_users, seed_profiles, seed_accounts');
    }
  });
}

/** Empties the tables the writing workloads fill, so every run starts from the same state. */
export async function resetWrites() {
  await withClient(benchUrl(), (client) =>
    client.query('truncate users, profiles, audit_log restart identity cascade'),
  );
}

/** Rows the writing workloads left, to check a run did what it reported. */
export async function countWrites() {
  return withClient(benchUrl(), async (client) => {
    const { rows } = await client.query(
      `select (select count(*) from users)::int as users, (select count(*) from profiles)::int as profiles,
        (select count(*) from audit_log)::int as audit`,
    );
    return rows[0];
  });
}
