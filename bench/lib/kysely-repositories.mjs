// The workloads' repositories as Kysely queries, over whatever Kysely `current()` returns (txscope's
// ambient one, or @nestjs-cls/transactional's `txHost.tx`).

/**
 * @param {() => import('kysely').Kysely<any>} current
 */
export function kyselyRepositories(current) {
  return {
    users: {
      insert: async (email, name) =>
        (
          await current()
            .insertInto('users')
            .values({ email, name })
            .returning('id')
            .executeTakeFirstOrThrow()
        ).id,
      find: (id) =>
        current().selectFrom('users').select(['id', 'email', 'name']).where('id', '=', id).executeTakeFirst(),
    },
    profiles: {
      insert: async (userId, bio) => {
        await current().insertInto('profiles').values({ user_id: userId, bio }).execute();
      },
    },
    audit: {
      record: async (userId, action) => {
        await current().insertInto('audit_log').values({ user_id: userId, action }).execute();
      },
    },
    catalog: {
      user: (id) =>
        current()
          .selectFrom('seed_users')
          .select(['id', 'email', 'name'])
          .where('id', '=', id)
          .executeTakeFirst(),
      profile: (id) =>
        current()
          .selectFrom('seed_profiles')
          .select(['user_id', 'bio'])
          .where('user_id', '=', id)
          .executeTakeFirst(),
      account: (id) =>
        current()
          .selectFrom('seed_accounts')
          .select(['id', 'owner', 'balance'])
          .where('id', '=', id)
          .executeTakeFirst(),
    },
  };
}
