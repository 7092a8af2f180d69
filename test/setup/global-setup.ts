import type { TestProject } from 'vitest/node';
import { redactUrl } from '../support/redact.js';
import { banner } from './banner.js';
import { type EmbeddedPostgresServer, startEmbeddedPostgres } from './embedded-postgres.js';
import { type PgBouncer, pgbouncerMissingInCi, startPgBouncerForRun } from './pgbouncer-run.js';
import { probeMysql, probePostgres } from './probe.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of a PostgreSQL server; each test file makes its own database on it. */
    pgUrl: string;
    /** True when no server answered and the run uses a throwaway embedded PostgreSQL. */
    pgEmbedded: boolean;
    /** Admin URL of a MySQL/MariaDB server, or null when none answered (MySQL suites skip). */
    mysqlUrl: string | null;
    /** PgBouncer (transaction mode) in front of pgUrl's server, or null when it is not installed. */
    pgbouncer: { port: number; poolSize: number; adminUrl: string } | null;
  }
}

const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const DEFAULT_MYSQL_URL = 'mysql://root@127.0.0.1:3306/test';
const PG_START_COMMAND = 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';
const MARIADB_START_COMMAND = 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pgFromEnv = envUrl('TXSCOPE_PG_URL');
  const mysqlFromEnv = envUrl('TXSCOPE_MYSQL_URL');
  const pgUrl = pgFromEnv ?? DEFAULT_PG_URL;
  const mysqlUrl = mysqlFromEnv ?? DEFAULT_MYSQL_URL;

  const [pgProbe, mysqlProbe] = await Promise.all([probePostgres(pgUrl), probeMysql(mysqlUrl)]);

  // Every reason to refuse the run is collected first, so one run reports all of them and
  // nothing (an embedded server) has been started that would need cleaning up.
  const fatal: string[] = [];
  if (!pgProbe.ok && pgFromEnv !== undefined) {
    fatal.push(
      `PostgreSQL at TXSCOPE_PG_URL=${redactUrl(pgUrl)} did not answer (tried: connect with pg and ` +
        `'select 1', 2s timeout): ${pgProbe.reason}. An explicit URL is never replaced by an ` +
        `embedded PostgreSQL: start that server, or unset TXSCOPE_PG_URL to use ${DEFAULT_PG_URL} ` +
        '(or, if that is down too, an embedded PostgreSQL).',
    );
  }
  if (!mysqlProbe.ok && process.env.CI === 'true') {
    fatal.push(
      `MySQL/MariaDB at ${redactUrl(mysqlUrl)} did not answer (tried: connect with mysql2 and ` +
        `'select 1', 2s timeout): ${mysqlProbe.reason}. CI=true requires it, so the run fails ` +
        `instead of skipping the MySQL suites. Start MariaDB with: ${MARIADB_START_COMMAND}` +
        (mysqlFromEnv === undefined ? '' : ' (or fix TXSCOPE_MYSQL_URL)'),
    );
  }
  const pgbouncerMissing = pgbouncerMissingInCi();
  if (pgbouncerMissing !== null) fatal.push(pgbouncerMissing);
  if (fatal.length > 0) throw new Error(`txscope test setup failed:\n- ${fatal.join('\n- ')}`);

  let embedded: EmbeddedPostgresServer | undefined;
  if (pgProbe.ok) {
    project.provide('pgUrl', pgUrl);
  } else {
    process.stderr.write(
      `[txscope tests] PostgreSQL at ${redactUrl(pgUrl)} did not answer (${pgProbe.reason}); ` +
        `starting an embedded PostgreSQL for this run (start the server with: ${PG_START_COMMAND}).\n`,
    );
    try {
      embedded = await startEmbeddedPostgres((line) => process.stderr.write(`[txscope tests] ${line}\n`));
    } catch (error) {
      const failure = new Error(
        `txscope test setup failed:\n- ${(error as Error).message}\n` +
          `Start the machine's PostgreSQL (${PG_START_COMMAND}), or set TXSCOPE_PG_URL to a server.`,
      );
      // The message says all there is to say; this module's stack would only bury it.
      failure.stack = failure.message;
      throw failure;
    }
    process.stderr.write(`[txscope tests] embedded PostgreSQL ready at ${redactUrl(embedded.url)}\n`);
    project.provide('pgUrl', embedded.url);
  }
  project.provide('pgEmbedded', embedded !== undefined);

  let pgbouncer: PgBouncer | null = null;
  try {
    pgbouncer = await startPgBouncerForRun(embedded?.url ?? pgUrl);
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
  project.provide(
    'pgbouncer',
    pgbouncer && { port: pgbouncer.port, poolSize: pgbouncer.poolSize, adminUrl: pgbouncer.adminUrl },
  );

  if (mysqlProbe.ok) {
    project.provide('mysqlUrl', mysqlUrl);
  } else {
    process.stderr.write(
      banner([
        'MySQL/MariaDB test suites are SKIPPED in this run.',
        `Nothing answered at ${redactUrl(mysqlUrl)}:`,
        `  ${mysqlProbe.reason}`,
        'Start MariaDB with:',
        `  ${MARIADB_START_COMMAND}`,
        'or set TXSCOPE_MYSQL_URL to a server. With CI=true this fails the run instead.',
      ]),
    );
    project.provide('mysqlUrl', null);
  }

  return async () => {
    await pgbouncer?.stop();
    await embedded?.stop();
  };
}

// An empty variable (`TXSCOPE_PG_URL= npm test`) means unset, not "connect to nothing".
function envUrl(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}
