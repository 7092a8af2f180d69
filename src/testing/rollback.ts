/**
 * Test transactions: each test runs inside one transaction that is rolled back at its end, and
 * every statement of the database in the process joins it meanwhile (the test body, requests the
 * app serves, other scopes, detached work); the application's own transactions become savepoints.
 */
import { bind, lookup, noLeases, runIn } from '../core/context.js';
import { type Database, engineOf } from '../core/database.js';
import type { Engine } from '../core/engine.js';
import { openTestTransaction, type TestPin } from '../core/test-transaction.js';
import { errors } from '../errors.js';

/**
 * The test runner's per-test hooks: vitest's or Jest's `beforeEach` and `afterEach`, or vitest's
 * `aroundEach`, which runs each test inside the test transaction's async context (so a statement
 * the test sends after its end rejects, and strict mode sees the test body as in a scope).
 */
export type TestHooks =
  | {
      beforeEach(fn: () => unknown): unknown;
      afterEach(fn: () => unknown): unknown;
      aroundEach?: undefined;
    }
  | { aroundEach(fn: (runTest: () => Promise<void>) => Promise<void>): unknown };

function engineOfDatabase(db: Database, call: string): Engine {
  const engine = engineOf(db);
  if (engine === undefined) throw errors.invalidArgument(call, 'a database made by createDatabase');
  return engine;
}

/**
 * Runs `fn` inside a test transaction that is rolled back when `fn` settles, whatever
 * it did. Everything the process sends to `db` meanwhile joins that transaction; the app's own
 * transactions are savepoints of it, and their after-commit callbacks run when they are released.
 *
 * @example
 * ```ts
 * import { test } from 'node:test';
 * import { withRollback } from 'txscope/testing';
 *
 * test('signs a user up', () =>
 *   withRollback(db, async () => {
 *     await users.signUp({ email: 'ada@example.com' });
 *     assert.equal((await db.query('select count(*)::int as n from users')).rows[0].n, 1);
 *   }));
 * ```
 */
export async function withRollback<T>(db: Database, fn: () => T | Promise<T>): Promise<T> {
  const engine = engineOfDatabase(db, 'withRollback(db, fn)');
  if (typeof fn !== 'function') throw errors.invalidOption('withRollback fn', 'a function', fn);
  const pin = openTestTransaction(engine);
  const binding = bind(engine, lookup(engine), {
    session: null,
    frame: null,
    pin,
    held: noLeases,
    detached: false,
  });
  try {
    return await runIn(binding, fn);
  } finally {
    await pin.close();
  }
}

/**
 * Runs every test of the file inside a test transaction rolled back after it (see
 * {@link withRollback}). Uses the hooks passed in (vitest's `aroundEach`, or `beforeEach` and
 * `afterEach`), else the runner's global `beforeEach`/`afterEach` (Jest, vitest with `globals: true`).
 *
 * @example
 * ```ts
 * import { afterEach, beforeEach, expect, test } from 'vitest';
 * import { rollbackAfterEach } from 'txscope/testing';
 *
 * rollbackAfterEach(db, { beforeEach, afterEach });
 *
 * test('signs a user up', async () => {
 *   const res = await fetch(`${baseUrl}/users`, { method: 'POST', body: JSON.stringify(input) });
 *   expect(res.status).toBe(201);
 * });
 * ```
 */
export function rollbackAfterEach(db: Database, hooks?: TestHooks): void {
  const engine = engineOfDatabase(db, 'rollbackAfterEach(db, hooks?)');
  const runner = hooks ?? globalHooks();
  if (runner.aroundEach !== undefined) {
    runner.aroundEach((runTest) => withRollback(db, runTest));
    return;
  }
  const { beforeEach, afterEach } = runner;
  let open: TestPin | null = null;
  beforeEach(() => {
    open = openTestTransaction(engine);
  });
  afterEach(async () => {
    const pin = open;
    open = null;
    await pin?.close();
  });
}

type PerTestHook = (fn: () => unknown) => unknown;

function globalHooks(): TestHooks {
  const scope = globalThis as { beforeEach?: unknown; afterEach?: unknown };
  const { beforeEach, afterEach } = scope;
  if (typeof beforeEach !== 'function' || typeof afterEach !== 'function') {
    throw errors.invalidArgument(
      'rollbackAfterEach(db, hooks?)',
      "the test runner's hooks: pass { aroundEach } or { beforeEach, afterEach } (imported from 'vitest'), or enable vitest's " +
        'globals or run under Jest; with node:test, wrap each test in withRollback(db, fn)',
    );
  }
  return { beforeEach: beforeEach as PerTestHook, afterEach: afterEach as PerTestHook };
}
