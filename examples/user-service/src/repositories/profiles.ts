import { kysely } from '../db.js';

export async function insertProfile(userId: number, bio: string): Promise<void> {
  await kysely.insertInto('profiles').values({ user_id: userId, bio }).execute();
}
