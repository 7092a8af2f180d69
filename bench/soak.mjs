// The soak: the example app (examples/user-service, as `npm start` runs it) under a long mixed load
// on a pool of 5, checking that nothing accumulates: heap, held connections, open transactions,
// lost money, leak warnings. Bounded in count and time; not part of `npm test`.
//
//   node bench/soak.mjs [--requests N] [--seconds S] [--concurrency C] [--seed X] [--embedded] [--no-write]
//   npm run bench -- --soak [same options]
//
// The mix: sign-ups (3 % of them reuse an email: 409), reads of users and accounts, transfers between
// three accounts at SERIALIZABLE, at most 4 at once (they conflict; retries, or 503 when retries run
// out), 1 % bad input
// (400), and 5 % of all requests aborted by the client 0-4 ms after sending.
//
// Database: a fresh `txscope_soak_<pid>` on the machine's PostgreSQL (TXSCOPE_SOAK_PG_URL, else
// TXSCOPE_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres), or, when none answers or with
// --embedded, a throwaway embedded PostgreSQL. The heap is read in the server process through a
// preloaded module that answers over the IPC channel, so the example itself carries no hook.
//
// Writes its report into bench/RESULTS.md between <!-- soak:start --> and <!-- soak:end -->
// (appended at the end when the markers are missing) unless --no-write; exits 1 when a check fails.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const rootDir = fileURLToPath(new URL('..', import.meta.url));
const benchDir = fileURLToPath(new URL('.', import.meta.url));
const exampleDist = join(rootDir, 'examples/user-service/dist');

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '1200' },
    concurrency: { type: 'string', default: '32' },
    seed: { type: 'string', default: '1' },
    embedded: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
  },
  strict: true,
});
const totalRequests = positive('requests');
const timeLimitMs = positive('seconds') * 1000;
const concurrency = positive('concurrency');
const warmupRequests = Math.min(10_000, Math.ceil(totalRequests / 10));
const POOL_MAX = 5;
const HEAP_RATIO_LIMIT = 1.1;
const ACCOUNTS = 3;
// Transfers all touch the example's three accounts at SERIALIZABLE: a few at once conflict often
// (the retries and the 503s are what the soak wants); 32 at once would be a retry storm that
// starves every other request of the pool, which measures the workload, not txscope.
const TRANSFERS_IN_FLIGHT = 4;
const INITIAL_BALANCE = 1000;
// Its own name, so that soaks run at once (by several people on one server) stay apart.
const SOAK_DATABASE = `txscope_soak_${process.pid}`;

function positive(name) {
  const value = Number(args[name]);
  if (!Number.isSafeInteger(value) || value <= 0) {
    console.error(`--${name} must be a positive integer, not ${args[name]}`);
    process.exit(2);
  }
  return value;
}

// ---- build, database, server ----

/** What `npm start` builds, when its output is missing or older than its sources. */
function build() {
  const newest = (dir) =>
    readdirSync(dir, { withFileTypes: true }).reduce((max, entry) => {
      const path = join(dir, entry.name);
      return Math.max(max, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
    }, 0);
  const stale = (output, sources) => !existsSync(output) || statSync(output).mtimeMs < newest(sources);
  const options = { cwd: rootDir, stdio: 'inherit' };
  if (stale(join(rootDir, 'dist/index.js'), join(rootDir, 'src'))) {
    console.log('building the library');
    execFileSync('npm', ['run', 'build', '--silent'], options);
  }
  if (stale(join(exampleDist, 'main.js'), join(rootDir, 'examples/user-service/src'))) {
    console.log('building the example');
    execFileSync(join(rootDir, 'node_modules/.bin/tsc'), ['-p', 'examples/user-service'], options);
  }
}

function machineAdminUrl() {
  return (
    process.env.TXSCOPE_SOAK_PG_URL ??
    process.env.TXSCOPE_PG_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres'
  );
}

async function answers(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A fresh database: `{ url, label, drop() }`. */
async function freshDatabase() {
  const admin = machineAdminUrl();
  if (!args.embedded && (await answers(admin))) {
    await adminQuery(admin, `drop database if exists ${SOAK_DATABASE} with (force)`);
    await adminQuery(admin, `create database ${SOAK_DATABASE}`);
    const url = new URL(admin);
    url.pathname = `/${SOAK_DATABASE}`;
    return {
      url: url.href,
      label: "the machine's PostgreSQL",
      drop: () => adminQuery(admin, `drop database if exists ${SOAK_DATABASE} with (force)`),
    };
  }
  const { startEmbeddedPostgres } = await import(pathToFileURL(join(exampleDist, 'embedded.js')).href);
  const dir = mkdtempSync(join(os.tmpdir(), 'txscope-soak-'));
  const server = await startEmbeddedPostgres({
    dataDir: join(dir, 'data'),
    password: 'soak',
    database: SOAK_DATABASE,
    initdbFlags: ['--no-sync'],
    settings: { fsync: 'off', synchronous_commit: 'off' },
    report: (line) => console.log(`  embedded PostgreSQL: ${line}`),
  });
  return {
    url: server.url,
    label: 'an embedded PostgreSQL',
    drop: async () => {
      await server.stop();
      rmSync(server.dataDir, { recursive: true, force: true });
      rmSync(server.logFile, { force: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function adminQuery(url, text, values) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

// Preloaded into the server: answers 'heap' with the heap after a full collection, and counts leak
// reports (the diagnostics channel and the process warning are counted apart; txscope sends both).
const probeSource = `
import diagnostics from 'node:diagnostics_channel';
const leaks = { events: 0, warnings: 0 };
diagnostics.subscribe('txscope:leak', () => { leaks.events++; });
process.on('warning', (warning) => { if (warning.code === 'TXSCOPE_LEAK') leaks.warnings++; });
process.on('message', (message) => {
  if (message !== 'heap') return;
  globalThis.gc();
  globalThis.gc();
  process.send({ heapUsed: process.memoryUsage().heapUsed, leaks });
});
// The soak died without stopping it: stop as on Ctrl-C rather than run on.
process.on('disconnect', () => process.kill(process.pid, 'SIGINT'));
process.channel.unref();
`;

async function startServer(databaseUrl) {
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      `data:text/javascript,${encodeURIComponent(probeSource)}`,
      join(exampleDist, 'main.js'),
    ],
    {
      cwd: rootDir,
      env: { ...process.env, DATABASE_URL: databaseUrl, POOL_MAX: String(POOL_MAX), PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    },
  );
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the example did not start in 60 s:\n${output}`)),
      60_000,
    );
    child.stdout.on('data', () => {
      const match = /ready in \d+ ms: (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    exited.then((code) => reject(new Error(`the example exited (${code}) before it was ready:\n${output}`)));
  });
  return {
    url,
    output: () => output,
    heap: () =>
      new Promise((resolve) => {
        child.once('message', resolve);
        child.send('heap');
      }),
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      return exited;
    },
  };
}

// ---- the load ----

/** mulberry32: the same mix for the same seed. */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BAD_INPUTS = [
  { method: 'POST', path: '/users', body: '{not json' },
  { method: 'POST', path: '/users', body: JSON.stringify({ email: 'nope', name: 'x' }) },
  { method: 'POST', path: '/users', body: JSON.stringify({ email: 'a@b.co' }) },
  { method: 'GET', path: '/users/abc' },
  { method: 'POST', path: '/transfers', body: JSON.stringify({ from: 1, to: 1, amount: 5 }) },
  { method: 'POST', path: '/transfers', body: JSON.stringify({ from: 1, to: 2, amount: -5 }) },
];

/** Which answers each kind of request may get; anything else is a failure. */
const EXPECTED = {
  signup: [201],
  duplicate: [409],
  read: [200],
  accounts: [200],
  // Insufficient funds, or still conflicting after every retry: nothing written either way.
  transfer: [200, 422, 503],
  bad: [400],
};

function plan(next, i, knownUsers, tag) {
  const r = next();
  if (r < 0.01) return { kind: 'bad', ...BAD_INPUTS[i % BAD_INPUTS.length] };
  if (r < 0.36 || knownUsers.length === 0) {
    if (knownUsers.length > 0 && next() < 0.03) {
      const email = knownUsers[Math.floor(next() * knownUsers.length)].email;
      return {
        kind: 'duplicate',
        method: 'POST',
        path: '/users',
        body: JSON.stringify({ email, name: 'Again' }),
      };
    }
    const body = { email: `soak-${tag}-${i}@example.com`, name: `User ${i}`, bio: `bio ${i}` };
    return { kind: 'signup', method: 'POST', path: '/users', body: JSON.stringify(body) };
  }
  if (r < 0.8) {
    const { id } = knownUsers[Math.floor(next() * knownUsers.length)];
    return { kind: 'read', method: 'GET', path: `/users/${id}` };
  }
  if (r < 0.86) return { kind: 'accounts', method: 'GET', path: '/accounts' };
  const from = 1 + Math.floor(next() * ACCOUNTS);
  const to = 1 + ((from - 1 + 1 + Math.floor(next() * (ACCOUNTS - 1))) % ACCOUNTS);
  const amount = 1 + Math.floor(next() * 20);
  return { kind: 'transfer', method: 'POST', path: '/transfers', body: JSON.stringify({ from, to, amount }) };
}

/** Sends one request; `abortAfterMs` destroys it that long after sending. Resolves with what happened. */
function send(agent, base, request, abortAfterMs) {
  return new Promise((resolve) => {
    const started = performance.now();
    const headers = request.body === undefined ? {} : { 'content-type': 'application/json' };
    let timer;
    let settled = false;
    const settle = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const req = http.request(`${base}${request.path}`, { method: request.method, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => settle({ status: res.statusCode, text, ms: performance.now() - started }));
      res.on('error', () => settle({ aborted: true }));
    });
    req.on('error', (error) =>
      settle(abortAfterMs === undefined ? { error: error.message } : { aborted: true }),
    );
    if (abortAfterMs !== undefined) timer = setTimeout(() => req.destroy(), abortAfterMs);
    req.end(request.body);
  });
}

/** `acquire()` resolves with a release function once fewer than `size` are held. */
function semaphore(size) {
  let held = 0;
  const waiting = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else held--;
  };
  return () =>
    new Promise((resolve) => {
      if (held < size) {
        held++;
        resolve(release);
      } else waiting.push(() => resolve(release));
    });
}

async function pollUntil(check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value.done || Date.now() > deadline) return value;
    await new Promise((done) => setTimeout(done, 100));
  }
}

async function serverIdle(base) {
  return pollUntil(async () => {
    const stats = await (await fetch(`${base}/stats`)).json();
    return { done: stats.checkedOut === 0 && stats.activeTransactions === 0, stats };
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ---- the run ----

async function main() {
  build();
  const database = await freshDatabase();
  let server;
  try {
    server = await startServer(database.url);
    await soak(database, server);
  } finally {
    await server?.stop();
    await database.drop();
  }
}

async function soak(database, server) {
  const started = Date.now();
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const next = random(Number(args.seed));
  const tag = Date.now().toString(36);
  console.log(
    `soak: ${totalRequests} requests, ${concurrency} in flight, pool ${POOL_MAX}, on ${database.label}, ` +
      `at most ${timeLimitMs / 1000} s; example at ${server.url}`,
  );

  const knownUsers = [];
  const latencies = new Float64Array(totalRequests);
  let measured = 0;
  const latenciesByKind = {};
  const kinds = {};
  const statuses = {};
  const unexpected = [];
  const okTransfers = [];
  let abortedTransfers = 0;
  let aborted = 0;
  let issued = 0;
  let timedOut = false;
  let warmHeap;
  const transferSlots = semaphore(TRANSFERS_IN_FLIGHT);

  const runUntil = async (limit) => {
    const worker = async () => {
      while (issued < limit) {
        if (Date.now() - started > timeLimitMs) {
          timedOut = true;
          return;
        }
        const i = issued++;
        const request = plan(next, i, knownUsers, tag);
        const abortAfterMs = next() < 0.05 ? next() * 4 : undefined;
        kinds[request.kind] = (kinds[request.kind] ?? 0) + 1;
        const release = request.kind === 'transfer' ? await transferSlots() : () => {};
        const result = await send(agent, server.url, request, abortAfterMs).finally(release);
        if (result.aborted) {
          aborted++;
          if (request.kind === 'transfer') abortedTransfers++;
          continue;
        }
        if (result.error !== undefined) {
          unexpected.push(`${request.method} ${request.path}: ${result.error}`);
          continue;
        }
        latencies[measured++] = result.ms;
        const ofKind = latenciesByKind[request.kind] ?? [];
        ofKind.push(result.ms);
        latenciesByKind[request.kind] = ofKind;
        statuses[result.status] = (statuses[result.status] ?? 0) + 1;
        if (!EXPECTED[request.kind].includes(result.status)) {
          unexpected.push(
            `${request.kind} ${request.method} ${request.path}: ${result.status} ${result.text.slice(0, 200)}`,
          );
        } else if (request.kind === 'signup') {
          const user = JSON.parse(result.text);
          knownUsers.push({ id: user.id, email: user.email });
        } else if (request.kind === 'transfer' && result.status === 200) {
          okTransfers.push(JSON.parse(request.body));
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };

  const progress = setInterval(() => {
    console.log(`  ${issued} requests, ${Math.round((Date.now() - started) / 1000)} s`);
  }, 10_000);
  try {
    await runUntil(warmupRequests);
    await serverIdle(server.url);
    warmHeap = await server.heap();
    console.log(`  warmed up after ${issued} requests: heap ${mb(warmHeap.heapUsed)}`);
    await runUntil(totalRequests);
  } finally {
    clearInterval(progress);
  }
  const loadSeconds = (Date.now() - started) / 1000;
  agent.destroy();

  // Aborted requests may still be finishing on the server: wait for it to settle, then look.
  const idle = await serverIdle(server.url);
  const activity = await pollUntil(async () => {
    const { rows } = await adminQuery(
      database.url,
      `select count(*)::int as connections,
              count(*) filter (where xact_start is not null)::int as open_transactions,
              count(*) filter (where state = 'active')::int as active
         from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`,
    );
    return { done: rows[0].open_transactions === 0 && rows[0].active === 0, ...rows[0] };
  });
  const endHeap = await server.heap();
  const { rows: accounts } = await adminQuery(database.url, 'select id, balance from accounts order by id');
  const { rows: audits } = await adminQuery(
    database.url,
    "select action from audit_log where action like 'transfer %'",
  );
  const stopCode = await server.stop();

  // Every committed transfer wrote its audit row in the same transaction: replaying them must give
  // the balances, and their sum must be what the accounts started with.
  const expected = Array.from({ length: ACCOUNTS }, () => INITIAL_BALANCE);
  for (const { action } of audits) {
    const [, amount, from, to] = /^transfer (\d+) from (\d+) to (\d+)$/.exec(action).map(Number);
    expected[from - 1] -= amount;
    expected[to - 1] += amount;
  }
  const balances = accounts.map((a) => a.balance);
  const total = balances.reduce((a, b) => a + b, 0);
  const leakOutput = (server.output().match(/TXSCOPE_LEAK/g) ?? []).length;
  const sorted = latencies.slice(0, measured).sort();
  const ratio = endHeap.heapUsed / warmHeap.heapUsed;

  const checks = [
    [
      `${issued} of ${totalRequests} requests sent`,
      issued >= totalRequests,
      timedOut ? `stopped by the time bound (--seconds ${timeLimitMs / 1000}); raise it` : '',
    ],
    [
      `heap after a forced GC: ${mb(warmHeap.heapUsed)} after warm-up, ${mb(endHeap.heapUsed)} at the end, ratio ${ratio.toFixed(3)}`,
      ratio < HEAP_RATIO_LIMIT,
      `must be < ${HEAP_RATIO_LIMIT}`,
    ],
    [
      `db.stats() afterwards: ${idle.stats.checkedOut} connections checked out, ${idle.stats.activeTransactions} transactions open`,
      idle.done,
      '',
    ],
    [
      `pg_stat_activity afterwards: ${activity.open_transactions} open transactions, ${activity.active} active statements (${activity.connections} idle pooled connections)`,
      activity.done,
      '',
    ],
    [
      `balances ${balances.join(' + ')} = ${total} (started ${ACCOUNTS} × ${INITIAL_BALANCE}); replaying the ${audits.length} committed transfers in audit_log gives ${expected.join(', ')}`,
      total === ACCOUNTS * INITIAL_BALANCE && expected.every((balance, i) => balance === balances[i]),
      '',
    ],
    [
      `committed transfers: ${audits.length}, answered 200: ${okTransfers.length}, aborted by the client: ${abortedTransfers}`,
      audits.length >= okTransfers.length && audits.length <= okTransfers.length + abortedTransfers,
      'every 200 committed, and nothing else did but some aborted ones',
    ],
    [
      `leak reports: ${endHeap.leaks.events} on txscope:leak, ${endHeap.leaks.warnings} TXSCOPE_LEAK warnings, ${leakOutput} in the server's output`,
      endHeap.leaks.events + endHeap.leaks.warnings + leakOutput === 0,
      '',
    ],
    [`unexpected answers: ${unexpected.length}`, unexpected.length === 0, unexpected.slice(0, 5).join('; ')],
    [`the example stopped cleanly on Ctrl-C (exit code ${stopCode})`, stopCode === 0, ''],
  ];
  const passed = checks.every(([, ok]) => ok);

  const lines = [
    `### Soak: ${passed ? 'passed' : 'FAILED'}`,
    '',
    `\`node bench/soak.mjs --requests ${totalRequests}\` on ${new Date().toISOString().slice(0, 10)}: ` +
      `Node ${process.version}, ${os.cpus().length} cores, ${database.label}, pool of ${POOL_MAX}, ` +
      `${concurrency} requests in flight; ${issued} requests in ${loadSeconds.toFixed(0)} s ` +
      `(${Math.round(issued / loadSeconds)} per second, warm-up ${warmupRequests}).`,
    '',
    `- mix: ${Object.entries(kinds)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(', ')}; aborted by the client ${aborted}`,
    `- answers: ${Object.entries(statuses)
      .map(([status, n]) => `${status}: ${n}`)
      .join(', ')}`,
    `- latency of answered requests: p50 ${sorted.length ? percentile(sorted, 50).toFixed(1) : '-'} ms, p99 ${sorted.length ? percentile(sorted, 99).toFixed(1) : '-'} ms, max ${sorted.length ? sorted[sorted.length - 1].toFixed(1) : '-'} ms`,
    `- by kind (p50 / p99 ms): ${Object.entries(latenciesByKind)
      .map(([kind, list]) => {
        const ordered = Float64Array.from(list).sort();
        return `${kind} ${percentile(ordered, 50).toFixed(1)} / ${percentile(ordered, 99).toFixed(1)}`;
      })
      .join(', ')}`,
    '',
    ...checks.map(
      ([text, ok, note]) => `- ${ok ? 'ok' : 'FAILED'}: ${text}${!ok && note ? ` (${note})` : ''}`,
    ),
  ];
  const report = lines.join('\n');
  console.log(`\n${report}\n`);
  if (!args['no-write']) {
    await writeResults(report);
    console.log('wrote the soak section of bench/RESULTS.md');
  }
  process.exitCode = passed ? 0 : 1;
}

function mb(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Replaces what is between the soak markers in RESULTS.md, appending them when they are missing. */
async function writeResults(report) {
  const file = join(benchDir, 'RESULTS.md');
  const start = '<!-- soak:start -->';
  const end = '<!-- soak:end -->';
  const text = existsSync(file) ? await readFile(file, 'utf8') : '';
  const block = `${start}\n${report}\n${end}`;
  const from = text.indexOf(start);
  const to = text.indexOf(end, from);
  const next =
    from >= 0 && to >= 0
      ? `${text.slice(0, from)}${block}${text.slice(to + end.length)}`
      : `${text.trimEnd()}\n\n${block}\n`;
  await writeFile(file, next);
}

await main();
