// The workloads' repositories as Knex queries. `knexQueries` take the Knex (or `trx`) to run on as
// their first argument, as plain Knex code passes `trx` around; `knexRepositories` binds them to a
// module-level Knex (txscope's, from createKnex). Both spellings build the very same queries, so the
// two Knex contenders differ only in how the transaction reaches the repository.

/** @typedef {import('knex').Knex} Executor */

export const knexQueries = {
  users: {
    /** @param {Executor} db @param {string} email @param {string} name */
    insert: async (db, email, name) => (await db('users').insert({ email, name }).returning('id'))[0].id,
    /** @param {Executor} db @param {number} id */
    find: (db, id) => db('users').select('id', 'email', 'name').where('id', id).first(),
  },
  profiles: {
    /** @param {Executor} db @param {number} userId @param {string} bio */
    insert: async (db, userId, bio) => {
      await db('profiles').insert({ user_id: userId, bio });
    },
  },
  audit: {
    /** @param {Executor} db @param {number | null} userId @param {string} action */
    record: async (db, userId, action) => {
      await db('audit_log').insert({ user_id: userId, action });
    },
  },
  catalog: {
    /** @param {Executor} db @param {number} id */
    user: (db, id) => db('seed_users').select('id', 'email', 'name').where('id', id).first(),
    /** @param {Executor} db @param {number} id */
    profile: (db, id) => db('seed_profiles').select('user_id', 'bio').where('user_id', id).first(),
    /** @param {Executor} db @param {number} id */
    account: (db, id) => db('seed_accounts').select('id', 'owner', 'balance').where('id', id).first(),
  },
};

const q = knexQueries;

/** @param {Executor} knex */
export function knexRepositories(knex) {
  return {
    users: {
      insert: (email, name) => q.users.insert(knex, email, name),
      find: (id) => q.users.find(knex, id),
    },
    profiles: { insert: (userId, bio) => q.profiles.insert(knex, userId, bio) },
    audit: { record: (userId, action) => q.audit.record(knex, userId, action) },
    catalog: {
      user: (id) => q.catalog.user(knex, id),
      profile: (id) => q.catalog.profile(knex, id),
      account: (id) => q.catalog.account(knex, id),
    },
  };
}
