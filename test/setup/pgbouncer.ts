/**
 * A PgBouncer of the test run's own, in transaction pooling mode, in front of the test
 * PostgreSQL: the global setup starts one for the "pg via PgBouncer" driver case, and the restart
 * tests start their own so that restarting it disturbs no other file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/** Debian's package; TXSCOPE_PGBOUNCER_BIN points elsewhere. */
export const PGBOUNCER_BINARY = process.env.TXSCOPE_PGBOUNCER_BIN ?? '/usr/sbin/pgbouncer';
export const PGBOUNCER_INSTALL_COMMAND = 'apt-get install -y pgbouncer';

/** Server connections per database and user: smaller than the clients' pools (5 in the harness). */
export const DEFAULT_POOLER_POOL_SIZE = 3;

/** PgBouncer refuses to run as root; Debian's package brings this user, and so does PostgreSQL's. */
const RUN_AS = 'postgres';
const START_TIMEOUT_MS = 10_000;

export interface PgBouncerOptions {
  /** The PostgreSQL server every database name is forwarded to (any database, the same user). */
  serverUrl: string;
  /** `default_pool_size`. */
  poolSize?: number;
  /** A port to listen on (a restart reuses it); a free one when left out. */
  port?: number;
}

export interface PgBouncer {
  readonly port: number;
  readonly poolSize: number;
  /** `url` with the host and port replaced by PgBouncer's: the same database, through the pooler. */
  through(url: string): string;
  /** The admin console (`SHOW POOLS`, `KILL db`, `RECONNECT db`). */
  readonly adminUrl: string;
  /** Stops PgBouncer (SIGINT: at once, closing every connection) and starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** The end of PgBouncer's log, for failure messages. */
  log(): Promise<string>;
}

export function pgbouncerInstalled(): boolean {
  return existsSync(PGBOUNCER_BINARY);
}

/** Starts PgBouncer in transaction mode in a temp directory owned by the user it runs as. */
export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  const server = new URL(options.serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const poolSize = options.poolSize ?? DEFAULT_POOLER_POOL_SIZE;
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'txscope-pgbouncer-'));
  const asRoot = userInfo().uid === 0;
  const logFile = join(dir, 'pgbouncer.log');
  const config = join(dir, 'pgbouncer.ini');
  await writeFile(join(dir, 'userlist.txt'), `"${user}" ""\n`);
  await writeFile(
    config,
    [
      '[databases]',
      // Every database name (each test file makes its own) goes to the test server.
      `* = host=${server.hostname} port=${server.port || '5432'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      `admin_users = ${user}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 2000',
      // A pool per test database: idle ones are closed quickly so the server is not filled up.
      'server_idle_timeout = 10',
      'autodb_idle_timeout = 30',
      // After a failed server login (one cut short by KILL's pause, say) PgBouncer waits this long
      // before it tries again; the default 15 s would stall every client that long.
      'server_login_retry = 1',
      'ignore_startup_parameters = extra_float_digits',
      `logfile = ${logFile}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  if (asRoot) {
    const { uid, gid } = await userIds(RUN_AS);
    await chown(dir, uid, gid);
    for (const file of ['pgbouncer.ini', 'userlist.txt']) await chown(join(dir, file), uid, gid);
  }

  let child: ChildProcess | undefined;
  const launch = async () => {
    const args = asRoot ? ['-u', RUN_AS, config] : [config];
    const started = spawn(PGBOUNCER_BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    started.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child = started;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await accepts(port))) {
      if (started.exitCode !== null || Date.now() > deadline) {
        started.kill('SIGKILL');
        throw new Error(
          `PgBouncer did not start on 127.0.0.1:${port} (exit ${started.exitCode}): ${stderr.trim()}\n${await tail(logFile)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  const halt = async () => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    // SIGINT: PgBouncer's immediate shutdown, which closes every client and server connection.
    running.kill('SIGINT');
    const timer = setTimeout(() => running.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  await launch();

  return {
    port,
    poolSize,
    adminUrl: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/pgbouncer`,
    through(url) {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.href;
    },
    async restart() {
      await halt();
      await launch();
    },
    async stop() {
      await halt();
      await rm(dir, { recursive: true, force: true });
    },
    log: () => tail(logFile),
  };
}

async function tail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .slice(-Number(process.env.TXSCOPE_PGBOUNCER_LOG_LINES ?? 20))
    .join('\n');
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const entry = passwd.split('\n').find((line) => line.startsWith(`${name}:`));
  if (entry === undefined)
    throw new Error(`PgBouncer refuses to run as root, and there is no user '${name}' to run it as`);
  const [, , uid, gid] = entry.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
