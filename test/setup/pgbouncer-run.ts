/** The run's PgBouncer, started by the global setup: skipped loudly when missing, fatal with CI=true. */
import { banner } from './banner.js';
import {
  PGBOUNCER_BINARY,
  PGBOUNCER_INSTALL_COMMAND,
  type PgBouncer,
  pgbouncerInstalled,
  startPgBouncer,
} from './pgbouncer.js';

export type { PgBouncer };

/** With CI=true a missing PgBouncer fails the run (the reason, for the setup's list), else null. */
export function pgbouncerMissingInCi(): string | null {
  if (pgbouncerInstalled() || process.env.CI !== 'true') return null;
  return (
    `PgBouncer is not installed (${PGBOUNCER_BINARY}). CI=true requires it, so the run fails instead of ` +
    `skipping the "pg via PgBouncer" suites. Install it with: ${PGBOUNCER_INSTALL_COMMAND}`
  );
}

/** Starts the run's PgBouncer in front of `serverUrl`, or says loudly that its suites are skipped. */
export async function startPgBouncerForRun(serverUrl: string): Promise<PgBouncer | null> {
  if (!pgbouncerInstalled()) {
    process.stderr.write(
      banner([
        'The "pg via PgBouncer" test suites are SKIPPED in this run.',
        `PgBouncer is not installed (${PGBOUNCER_BINARY}).`,
        'Install it with:',
        `  ${PGBOUNCER_INSTALL_COMMAND}`,
        'With CI=true this fails the run instead.',
      ]),
    );
    return null;
  }
  return startPgBouncer({ serverUrl });
}
