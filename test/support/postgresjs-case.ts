/** The postgres.js driver under the parameterized harness: a fresh PostgreSQL database of its own. */
import pgLib from 'pg';
import type { Driver } from 'txscope';
import { pg } from 'txscope/pg';
import { postgresjs } from 'txscope/postgresjs';
import { freshPgDatabase } from './databases.js';
import type { DriverCase } from './drivers.js';

export const postgresjsCase: DriverCase = {
  name: 'postgresjs',
  capabilities: { observerIsolated: true, multiConnection: true, serverSessions: true },
  async start() {
    const fresh = await freshPgDatabase();
    // The observer is node-postgres: what the server saw, independent of the driver under test.
    const observer = new pgLib.Pool({ connectionString: fresh.url, max: 2 });
    observer.on('error', () => {});
    return {
      url: fresh.url,
      driver: (max) => postgresjs({ url: fresh.url, max, acquireTimeoutMillis: 5000, onnotice: () => {} }),
      observe: async (text, values) => (await observer.query(text, values)).rows,
      async stop() {
        await observer.end();
        await fresh.drop();
      },
    };
  },
};

/** The two PostgreSQL drivers over a network server, for suites that build a driver of their own. */
export const postgresServerDrivers = ['pg', 'postgresjs'] as const;

/** Settings both PostgreSQL server drivers take, each under its own option names. */
export interface ServerDriverSettings {
  url: string;
  max?: number;
  acquireTimeoutMillis?: number;
  /** node-postgres `maxLifetimeSeconds`, postgres.js `max_lifetime`. */
  lifetimeSeconds?: number;
  /** node-postgres `application_name`, postgres.js `connection.application_name`. */
  applicationName?: string;
}

/** A node-postgres or postgres.js driver with the same settings. */
export function postgresServerDriver(name: string, settings: ServerDriverSettings): Driver {
  const { url, max, acquireTimeoutMillis, lifetimeSeconds, applicationName } = settings;
  if (name === 'postgresjs') {
    return postgresjs({
      url,
      max,
      acquireTimeoutMillis,
      max_lifetime: lifetimeSeconds,
      onnotice: () => {},
      ...(applicationName === undefined ? {} : { connection: { application_name: applicationName } }),
    });
  }
  return pg({
    connectionString: url,
    max,
    acquireTimeoutMillis,
    maxLifetimeSeconds: lifetimeSeconds,
    application_name: applicationName,
  });
}
