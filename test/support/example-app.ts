/**
 * The example app as `npm start` runs it, for the tests that drive it as a child process:
 * building it (once, whichever test file asks first), starting it, and checking that nothing it
 * started is left behind.
 */
import { type ChildProcess, type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const exampleMain = 'examples/user-service/dist/main.js';
const BUILD_TIMEOUT_MS = 180_000;

/**
 * What `npm start` runs before starting node: the library, then the example. Test files run in
 * parallel and `npm run build` empties dist/ first, so builds take a lock, and a build that is
 * newer than its sources is not repeated.
 */
export async function buildExample(): Promise<void> {
  const lock = join(root, '.txscope', 'example-build.lock');
  mkdirSync(join(root, '.txscope'), { recursive: true });
  await acquire(lock);
  try {
    if (!builtAfter(join(root, 'dist/index.js'), join(root, 'src'))) {
      await promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: root });
    }
    if (!builtAfter(join(root, exampleMain), join(root, 'examples/user-service/src'))) {
      await promisify(execFile)(join(root, 'node_modules/.bin/tsc'), ['-p', 'examples/user-service'], {
        cwd: root,
      });
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

async function acquire(lock: string): Promise<void> {
  const deadline = Date.now() + BUILD_TIMEOUT_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    // A lock older than any build is one a killed run left behind.
    const heldSince = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
    if (Date.now() - heldSince > BUILD_TIMEOUT_MS) {
      rmSync(lock, { recursive: true, force: true });
    }
    if (Date.now() > deadline) throw new Error(`${lock} was held for ${BUILD_TIMEOUT_MS / 1000} s`);
    await new Promise((done) => setTimeout(done, 200));
  }
}

function builtAfter(output: string, sources: string): boolean {
  if (!existsSync(output)) return false;
  return statSync(output).mtimeMs >= newestMtime(sources);
}

function newestMtime(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
    const path = join(dir, entry.name);
    return Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }, 0);
}

// Children a failed or timed-out test did not stop: Ctrl-C'd when this worker exits, so that they
// stop their embedded PostgreSQL too instead of running on.
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGINT');
});

function spawnExample(env: Record<string, string>): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, [exampleMain], { cwd: root, env: exampleEnv(env) });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Ctrl-C to every example still running, and their exit awaited. */
export async function stopStrayExamples(): Promise<void> {
  await Promise.all(
    [...running].map((child) => {
      const exited = new Promise((done) => child.once('exit', done));
      child.kill('SIGINT');
      return exited;
    }),
  );
}

/** The environment the example gets: this one, minus what would point it elsewhere, plus `env`. */
function exampleEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'DATA_DIR', 'PORT', 'HOST', 'POOL_MAX']) delete base[name];
  return { ...base, ...env };
}

export interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the example to its end, which a startup failure is; kills it if it outlives `timeoutMs`. */
export function runExampleToExit(env: Record<string, string>, timeoutMs = 20_000): Promise<Exited> {
  const child = spawnExample(env);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      reject(new Error(`the example was still running after ${timeoutMs} ms:\n${stdout}${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RunningExample {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Ctrl-C; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts the example and resolves once it prints its URL; rejects with its output if it exits first. */
export async function startExample(env: Record<string, string>): Promise<RunningExample> {
  const child = spawnExample(env);
  const chunks: string[] = [];
  const output = () => chunks.join('');
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk.toString());
      const match = /ready in \d+ ms: (http:\/\/127\.0\.0\.1:\d+)/.exec(output());
      if (match?.[1]) resolve(match[1]);
    });
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
    void exited.then((code) =>
      reject(new Error(`the example exited (${code}) before it was ready:\n${output()}`)),
    );
  });
  return {
    child,
    url,
    output,
    stop: () => {
      child.kill('SIGINT');
      return exited;
    },
  };
}

/** PIDs of the postgres processes running on `dataDir` (postmaster and backends alike show it in argv). */
export function postgresProcessesOn(dataDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    const at = argv.indexOf('-D');
    if (at >= 0 && argv[at + 1] === dataDir && /postgres$/.test(argv[0] ?? '')) pids.push(Number(entry));
  }
  return pids;
}

/** Polls until no postgres runs on `dataDir`; the PIDs still there after `timeoutMs`. */
export async function postgresLeftOn(dataDir: string, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = postgresProcessesOn(dataDir);
    if (pids.length === 0 || Date.now() > deadline) return pids;
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** True when nothing listens on 127.0.0.1:`port`, proven by listening there. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** A port nothing listened on a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
