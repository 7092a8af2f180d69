// One database for the whole application, and one Kysely client that joins its transactions.
import { createDatabase } from 'txscope';
import { createKysely } from 'txscope/kysely';
import { pg } from 'txscope/pg';
import type { Schema } from './schema.js';

export const db = createDatabase({
  driver: pg({ connectionString: process.env.DATABASE_URL, max: Number(process.env.POOL_MAX ?? 5) }),
  name: 'user-service',
  strict: true,
  leakDetectionMs: 5_000,
});

export const kysely = createKysely<Schema>(db);
