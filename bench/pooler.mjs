// Signup through PgBouncer in transaction mode with several processes: txscope over pg against
// the same hand-written node-postgres code (bench/contenders/baseline.mjs), each contender as
// PROCESSES processes at once, all through one PgBouncer whose pool is smaller than the clients'.
// Rounds interleave the two contenders; the figure is the sum of the processes' signups/s.
//
// node bench/pooler.mjs [--processes 4] [--rounds 3] [--seconds 5] [--pool 5] [--concurrency 16] [--pooler-pool 10] [--direct]
// (after `npm run build`; needs /usr/sbin/pgbouncer and the bench database's server)
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchDir, benchUrl } from './lib/config.mjs';
import { startPgBouncer } from './lib/pgbouncer.mjs';
import { prepareDatabase } from './lib/schema.mjs';

const { values } = parseArgs({
  options: {
    processes: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    pool: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
    'pooler-pool': { type: 'string', default: '10' },
    // The same processes straight to PostgreSQL, for comparison.
    direct: { type: 'boolean', default: false },
  },
  strict: true,
});
const processes = Number(values.processes);
const contenders = ['baseline', 'txscope-pg'];

/** One process of a contender; resolves with its report. */
function runOne(name, url, tag) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        join(benchDir, 'contenders', `${name}.mjs`),
        ...['--workload', 'signup', '--seconds', values.seconds, '--pool', values.pool],
        ...['--concurrency', values.concurrency, '--url', url, '--tag', tag],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.stderr.on('data', (chunk) => {
      err += chunk;
    });
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`${name} exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)));
    });
  });
}

await prepareDatabase();
const bouncer = values.direct
  ? { url: benchUrl(), port: 'none', stop: async () => {} }
  : await startPgBouncer({ serverUrl: benchUrl(), poolSize: Number(values['pooler-pool']) });
console.log(
  `signup ${values.direct ? 'directly' : `through PgBouncer ${bouncer.port} (transaction mode, pool ${values['pooler-pool']})`}: ` +
    `${processes} processes × pool ${values.pool} × ${values.concurrency} in flight, ${values.seconds} s, ` +
    `load ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}`,
);
const totals = Object.fromEntries(contenders.map((name) => [name, []]));
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const name of round % 2 === 1 ? contenders : [...contenders].reverse()) {
      const reports = await Promise.all(
        Array.from({ length: processes }, (_, i) =>
          runOne(name, bouncer.url, `p${process.pid}r${round}${name}${i}`),
        ),
      );
      const perSecond = reports.reduce((sum, r) => sum + r.unitsPerSecond, 0);
      const p99 = Math.max(...reports.map((r) => r.p99Ms));
      totals[name].push(perSecond);
      console.log(
        `  round ${round} ${name.padEnd(11)} ${perSecond.toFixed(0).padStart(6)} signups/s, ` +
          `p99 ${p99.toFixed(1)} ms, ${reports[0].statementsPerUnit.toFixed(2)} statements/signup, ` +
          `${(reports.reduce((sum, r) => sum + r.cpuUsPerUnit, 0) / reports.length).toFixed(0)} µs CPU/signup`,
      );
    }
  }
} finally {
  await bouncer.stop();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(totals.baseline);
const tx = median(totals['txscope-pg']);
console.log(
  `median: baseline ${base.toFixed(0)}/s, txscope-pg ${tx.toFixed(0)}/s, ratio ${(tx / base).toFixed(3)}; ` +
    `load at end ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}`,
);
