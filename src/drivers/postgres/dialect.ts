/** PostgreSQL syntax, shared by every PostgreSQL driver (node-postgres, PGlite). */

import type { Dialect, DriverResult, ReplicationDialect } from '../../driver.js';
import { isolationLevels } from '../../options.js';
import { standardSavepoints } from '../runtime.js';

const lsnPattern = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;

/** An LSN (`16/B374D848`) as [high, low] 32-bit halves. */
function lsnParts(lsn: string): [number, number] {
  const slash = lsn.indexOf('/');
  return [Number.parseInt(lsn.slice(0, slash), 16), Number.parseInt(lsn.slice(slash + 1), 16)];
}

/**
 * WAL positions. The insert position is at or past the end of every commit record written so far
 * (the write position may trail it with `synchronous_commit = off`). Lag counts only while the
 * standby holds WAL it has not replayed: an idle primary is no lag.
 */
export const postgresReplication: ReplicationDialect = {
  currentPosition: 'select pg_current_wal_insert_lsn()::text as position',
  replicaStatus:
    'select pg_last_wal_replay_lsn()::text as replayed, case when pg_last_wal_receive_lsn() is null ' +
    'or pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() then 0 else coalesce(extract(epoch from ' +
    'clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000, 0) end::float8 as lag_ms',
  reached(replayed, required) {
    if (!lsnPattern.test(replayed) || !lsnPattern.test(required)) return false;
    const [rh, rl] = lsnParts(replayed);
    const [qh, ql] = lsnParts(required);
    return rh > qh || (rh === qh && rl >= ql);
  },
  isPosition: (text) => lsnPattern.test(text),
};

export const postgresDialect: Dialect = {
  name: 'postgres',
  placeholder: (index) => `$${index}`,
  quoteIdentifier: (name) => `"${name.replaceAll('"', '""')}"`,
  begin({ isolation, readOnly }) {
    let text = 'BEGIN';
    if (isolation !== undefined) text += ` ISOLATION LEVEL ${isolation.toUpperCase()}`;
    if (readOnly) text += ' READ ONLY';
    return [text];
  },
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  ...standardSavepoints,
  // Lasts to the savepoint's end: RELEASE and ROLLBACK TO both restore the read-write mode.
  readOnlySavepoint: { begin: 'SET LOCAL transaction_read_only = on' },
  isolationLevels,
  // PostgreSQL answers COMMIT of an aborted transaction with the ROLLBACK tag, not an error.
  committed: (result: DriverResult) =>
    result.command === undefined || result.command.toUpperCase() !== 'ROLLBACK',
  replication: postgresReplication,
};
