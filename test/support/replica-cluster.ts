/**
 * A private PostgreSQL primary with streaming hot standbys, for the read-replica tests (rule 20).
 * The machine's server cannot be the primary: its pg_hba.conf allows no replication, and its WAL
 * carries every parallel test file's writes. So each replica test file builds its own: `initdb`,
 * a free loopback port, `wal_level = replica`; standbys made with `pg_basebackup -R -X stream`,
 * each on its own port, one optionally delayed by `recovery_min_apply_delay`. Running as root, the
 * servers run as the `postgres` user in a directory made for it under the system temp dir (never
 * under the checkout, which CI copies into a 0700 root-owned directory).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { appendFile, chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where the PostgreSQL 15 binaries are (`TXSCOPE_PG_BIN` overrides). */
export const pgBin = process.env.TXSCOPE_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const needed = ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres', 'psql'];

/** Why a replica cluster cannot be built on this machine, or null when it can. */
export function missingReplicaTools(): string | null {
  const missing = needed.filter((name) => !existsSync(join(pgBin, name)));
  if (missing.length > 0) return `missing ${missing.join(', ')} in ${pgBin}`;
  if (process.getuid?.() === 0 && !existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser')) {
    return 'running as root without runuser to start PostgreSQL as the postgres user';
  }
  return null;
}

export interface StandbyOptions {
  /** `recovery_min_apply_delay` in milliseconds: commits become visible this much later. */
  applyDelayMs?: number;
}

/** One server of the cluster. */
export interface ClusterServer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/test` (trust authentication, no password). */
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface ReplicaCluster {
  readonly primary: ClusterServer;
  readonly standbys: readonly ClusterServer[];
  /** Stops every server and removes the cluster's directory. */
  destroy(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL binary, as the postgres user when we are root. */
async function pg(binary: string, args: readonly string[]): Promise<void> {
  const path = join(pgBin, binary);
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, [...args]];
  try {
    // Not the caller's directory: CI runs the tree from a 0700 root-owned one the postgres user cannot enter.
    await run(file, argv, { timeout: 120_000, cwd: '/tmp' });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${binary} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

function settings(port: number, dir: string): string {
  return [
    '',
    `port = ${port}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${dir}'`,
    'wal_level = replica',
    'max_wal_senders = 10',
    'hot_standby = on',
    'hot_standby_feedback = on',
    'max_connections = 40',
    "shared_buffers = '16MB'",
    // A throwaway cluster has nothing to protect from a crash.
    'fsync = off',
    'full_page_writes = off',
    // Standbys report their replay position quickly.
    "wal_receiver_status_interval = '1s'",
    '',
  ].join('\n');
}

/** Clusters not destroyed yet: a worker that exits early (a failed hook, Ctrl-C) still stops them. */
const live = new Map<string, string[]>();
process.on('exit', () => {
  for (const [dir, dataDirs] of live) {
    for (const dataDir of dataDirs) {
      const args = [join(pgBin, 'pg_ctl'), '-D', dataDir, '-m', 'immediate', 'stop'];
      try {
        execFileSync(
          asRoot ? 'runuser' : (args.shift() as string),
          asRoot ? ['-u', 'postgres', '--', ...args] : args,
          {
            cwd: '/tmp',
            stdio: 'ignore',
            timeout: 10_000,
          },
        );
      } catch {
        // Not running.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

function server(dataDir: string, port: number): ClusterServer {
  const log = `${dataDir}.log`;
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/test`,
    stop: () => pg('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']),
    start: () => pg('pg_ctl', ['-D', dataDir, '-l', log, '-w', '-t', '60', 'start']),
  };
}

/**
 * Builds and starts a primary with one standby per entry of `standbys`. Each standby is a hot
 * standby streaming from the primary; the `test` database exists on all of them.
 */
export async function startReplicaCluster(standbys: readonly StandbyOptions[]): Promise<ReplicaCluster> {
  const dir = await mkdtemp('/tmp/txscope-replicas-');
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const started: ClusterServer[] = [];
  const dataDirs: string[] = [];
  live.set(dir, dataDirs);
  const destroy = async (): Promise<void> => {
    for (const s of started.reverse()) await s.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    live.delete(dir);
  };
  try {
    const primaryDir = join(dir, 'primary');
    const primaryPort = await freePort();
    await pg('initdb', [
      '-D',
      primaryDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '--no-instructions',
    ]);
    await appendFile(join(primaryDir, 'postgresql.conf'), settings(primaryPort, dir));
    await appendFile(join(primaryDir, 'pg_hba.conf'), '\nhost replication all 127.0.0.1/32 trust\n');
    const primary = server(primaryDir, primaryPort);
    dataDirs.push(primaryDir);
    await primary.start();
    started.push(primary);
    await pg('psql', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primaryPort),
      '-U',
      'postgres',
      '-c',
      'create database test',
    ]);
    const replicas: ClusterServer[] = [];
    for (const [i, options] of standbys.entries()) {
      const standbyDir = join(dir, `standby${i + 1}`);
      const port = await freePort();
      await pg('pg_basebackup', [
        ...['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres'],
        ...['-D', standbyDir, '-R', '-X', 'stream', '--no-sync', '--checkpoint=fast'],
      ]);
      const delay =
        options.applyDelayMs === undefined ? '' : `recovery_min_apply_delay = '${options.applyDelayMs}ms'\n`;
      await appendFile(join(standbyDir, 'postgresql.conf'), `${settings(port, dir)}${delay}`);
      const standby = server(standbyDir, port);
      dataDirs.push(standbyDir);
      await standby.start();
      started.push(standby);
      replicas.push(standby);
    }
    return { primary, standbys: replicas, destroy };
  } catch (error) {
    await destroy();
    throw error;
  }
}
