import { kysely } from '../db.js';

export interface User {
  id: number;
  email: string;
  name: string;
}

export async function insertUser(email: string, name: string): Promise<User> {
  return kysely
    .insertInto('users')
    .values({ email, name })
    .returning(['id', 'email', 'name'])
    .executeTakeFirstOrThrow();
}

export async function findUser(id: number): Promise<(User & { bio: string }) | undefined> {
  return kysely
    .selectFrom('users')
    .leftJoin('profiles', 'profiles.user_id', 'users.id')
    .select(['users.id', 'users.email', 'users.name', 'profiles.bio'])
    .where('users.id', '=', id)
    .executeTakeFirst()
    .then((row) => (row === undefined ? undefined : { ...row, bio: row.bio ?? '' }));
}
