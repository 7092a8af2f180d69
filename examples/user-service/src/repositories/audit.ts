import { kysely } from '../db.js';

export async function recordAudit(userId: number | null, action: string): Promise<void> {
  await kysely.insertInto('audit_log').values({ user_id: userId, action }).execute();
}
