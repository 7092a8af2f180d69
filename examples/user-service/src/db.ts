// One database for the whole application, and one Kysely client that joins its transactions.
import { createDatabase } from 'txscope';
import { createKysely } from 'txscope/kysely';
import { pg } from 'txscope/pg';
import type { Schema } from './schema.js';

const poolMax = Number(process.env.POOL_MAX ?? 5);
// REPLICA_URLS (comma-separated): read replicas; read-only transactions run there (docs/replicas.md).
const replicaUrls = (process.env.REPLICA_URLS ?? '')
  .split(',')
  .flatMap((url) => (url.trim() ? [url.trim()] : []));

export const db = createDatabase({
  driver: pg({ connectionString: process.env.DATABASE_URL, max: poolMax }),
  ...(replicaUrls.length === 0
    ? {}
    : { replicas: replicaUrls.map((connectionString) => pg({ connectionString, max: poolMax })) }),
  name: 'user-service',
  strict: true,
  leakDetectionMs: 5_000,
});

export const kysely = createKysely<Schema>(db);
