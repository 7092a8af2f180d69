// Where the benchmark's database lives and what every contender's workload looks like.
import { fileURLToPath } from 'node:url';

export const benchDir = fileURLToPath(new URL('..', import.meta.url));
export const rootDir = fileURLToPath(new URL('../..', import.meta.url));

/** The server the benchmark runs against: TXSCOPE_BENCH_PG_URL, else the tests' TXSCOPE_PG_URL, else the local one. */
export function adminUrl() {
  return (
    process.env.TXSCOPE_BENCH_PG_URL ??
    process.env.TXSCOPE_PG_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres'
  );
}

/** TXSCOPE_BENCH_DB names another database on the same server (two bench runs at once must not share tables). */
export const benchDatabase = /^[a-z_][a-z0-9_]*$/.test(process.env.TXSCOPE_BENCH_DB ?? '')
  ? /** @type {string} */ (process.env.TXSCOPE_BENCH_DB)
  : 'txscope_bench';

/** The same server, database `txscope_bench`. */
export function benchUrl() {
  const url = new URL(adminUrl());
  url.pathname = `/${benchDatabase}`;
  return url.toString();
}

/** Rows in each seed_* table, read by workload 2 and the slow handler. */
export const seedRows = 10_000;

/** The primary key unit `i` reads: spread over the seed tables, the same sequence for every contender. */
export function seedId(i) {
  return 1 + ((i * 7919) % seedRows);
}

/**
 * The signup input of unit `i`. `tag` keeps emails unique across processes between two truncations.
 * @param {string} tag
 * @param {number} i
 */
export function signupInput(tag, i) {
  return { email: `u${tag}-${i}@bench.test`, name: `User ${i}`, bio: `bio of user ${i}` };
}

/**
 * The statements of the workloads, for contenders that take SQL text. Query builders and ORMs
 * send the same statements in their own spelling (quoted identifiers, `?` placeholders).
 */
export const statements = {
  insertUser: 'insert into users (email, name) values ($1, $2) returning id',
  insertProfile: 'insert into profiles (user_id, bio) values ($1, $2)',
  insertAudit: 'insert into audit_log (user_id, action) values ($1, $2)',
  selectUser: 'select id, email, name from users where id = $1',
  readUser: 'select id, email, name from seed_users where id = $1',
  readProfile: 'select user_id, bio from seed_profiles where user_id = $1',
  readAccount: 'select id, owner, balance from seed_accounts where id = $1',
};

/** Workload 4's call to another service: awaited, no database. */
export const slowCallMs = 20;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
