import { sql } from 'kysely';
import { kysely } from '../db.js';

export interface Account {
  id: number;
  owner: string;
  balance: number;
}

export async function findAccount(id: number): Promise<Account | undefined> {
  return kysely
    .selectFrom('accounts')
    .select(['id', 'owner', 'balance'])
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function listAccounts(): Promise<Account[]> {
  return kysely.selectFrom('accounts').select(['id', 'owner', 'balance']).orderBy('id').execute();
}

export async function adjustBalance(id: number, delta: number): Promise<number> {
  const row = await kysely
    .updateTable('accounts')
    .set({ balance: sql<number>`balance + ${delta}` })
    .where('id', '=', id)
    .returning('balance')
    .executeTakeFirstOrThrow();
  return row.balance;
}
