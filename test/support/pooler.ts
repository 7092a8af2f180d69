/**
 * Driver cases behind PgBouncer in transaction mode: the same PostgreSQL test database, reached
 * through the run's PgBouncer (test/setup/pgbouncer.ts), whose pool is smaller than the client's.
 * The observer connects to the server directly, so pg_stat_activity shows real backends and an
 * observation never waits for one of PgBouncer's few server connections.
 */
import pgLib from 'pg';
import type { Driver } from 'txscope';
import { inject } from 'vitest';
import { freshPgDatabase } from './databases.js';
import type { Capabilities, DriverCase, DriverName } from './drivers.js';

/** PgBouncer as the run's global setup started it, or null when it is not installed. */
export function runPgBouncer(): { port: number; poolSize: number; adminUrl: string } | null {
  return inject('pgbouncer');
}

/** `url` (the test server's) with PgBouncer's host and port: the same database through the pooler. */
export function throughPgBouncer(url: string): string {
  const bouncer = runPgBouncer();
  if (bouncer === null) throw new Error('no PgBouncer in this run (see the notice of the global setup)');
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(bouncer.port);
  return parsed.href;
}

const capabilities: Capabilities = { observerIsolated: true, multiConnection: true, serverSessions: true };

/**
 * A PostgreSQL driver case through PgBouncer: `driver` builds the driver under test from the
 * pooler URL (node-postgres now; postgres.js is one more call with its own factory).
 */
export function pgbouncerCase(options: {
  name: DriverName;
  driver: (settings: { url: string; max: number }) => Driver;
}): DriverCase {
  return {
    name: options.name,
    capabilities,
    available: () => runPgBouncer() !== null,
    async start() {
      const fresh = await freshPgDatabase();
      const url = throughPgBouncer(fresh.url);
      const observer = new pgLib.Pool({ connectionString: fresh.url, max: 2 });
      observer.on('error', () => {});
      return {
        url,
        driver: (max) => options.driver({ url, max }),
        observe: async (text, values) => (await observer.query(text, values)).rows,
        async stop() {
          await observer.end();
          await fresh.drop();
        },
      };
    },
  };
}
