// The workloads' repositories as Kysely queries. `kyselyQueries` take the Kysely (or transaction) to
// run on as their first argument, as plain Kysely code passes `trx` around; `kyselyRepositories`
// binds them to whatever `current()` returns (txscope's ambient Kysely, or @nestjs-cls/transactional's
// `txHost.tx`). Both spellings build the very same queries, so the two Kysely contenders differ
// only in how the transaction reaches the repository.

/** @typedef {import('kysely').Kysely<any> | import('kysely').Transaction<any>} Executor */

export const kyselyQueries = {
  users: {
    /** @param {Executor} db @param {string} email @param {string} name */
    insert: async (db, email, name) =>
      (await db.insertInto('users').values({ email, name }).returning('id').executeTakeFirstOrThrow()).id,
    /** @param {Executor} db @param {number} id */
    find: (db, id) =>
      db.selectFrom('users').select(['id', 'email', 'name']).where('id', '=', id).executeTakeFirst(),
  },
  profiles: {
    /** @param {Executor} db @param {number} userId @param {string} bio */
    insert: async (db, userId, bio) => {
      await db.insertInto('profiles').values({ user_id: userId, bio }).execute();
    },
  },
  audit: {
    /** @param {Executor} db @param {number | null} userId @param {string} action */
    record: async (db, userId, action) => {
      await db.insertInto('audit_log').values({ user_id: userId, action }).execute();
    },
  },
  catalog: {
    /** @param {Executor} db @param {number} id */
    user: (db, id) =>
      db.selectFrom('seed_users').select(['id', 'email', 'name']).where('id', '=', id).executeTakeFirst(),
    /** @param {Executor} db @param {number} id */
    profile: (db, id) =>
      db.selectFrom('seed_profiles').select(['user_id', 'bio']).where('user_id', '=', id).executeTakeFirst(),
    /** @param {Executor} db @param {number} id */
    account: (db, id) =>
      db
        .selectFrom('seed_accounts')
        .select(['id', 'owner', 'balance'])
        .where('id', '=', id)
        .executeTakeFirst(),
  },
};

const q = kyselyQueries;

/**
 * @param {() => Executor} current
 */
export function kyselyRepositories(current) {
  return {
    users: {
      insert: (email, name) => q.users.insert(current(), email, name),
      find: (id) => q.users.find(current(), id),
    },
    profiles: { insert: (userId, bio) => q.profiles.insert(current(), userId, bio) },
    audit: { record: (userId, action) => q.audit.record(current(), userId, action) },
    catalog: {
      user: (id) => q.catalog.user(current(), id),
      profile: (id) => q.catalog.profile(current(), id),
      account: (id) => q.catalog.account(current(), id),
    },
  };
}
