// The harness of one contender process: parses the runner's arguments, counts what node-postgres
// sends, runs the workload's units closed-loop (N in flight), and reports one JSON object.
//
// Run alone: node bench/contenders/baseline.mjs --workload signup --seconds 3
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { benchUrl, rootDir } from './config.mjs';

const requireHere = createRequire(import.meta.url);

/** What node-postgres did in this process: every `Client#query` call and every `Client#connect`. */
export const counters = { statements: 0, connections: 0 };

const patched = new WeakSet();

/**
 * Counts statements and connections at the node-postgres level, below every library, for the
 * `pg` copy that `from` resolves (the bench's own by default; the example app uses the root's).
 * @param {string} [from] a file path to resolve `pg` from
 */
export function instrumentPg(from) {
  const pg = (from === undefined ? requireHere : createRequire(from))('pg');
  const proto = pg.Client.prototype;
  if (patched.has(proto)) return;
  patched.add(proto);
  const query = proto.query;
  proto.query = function countedQuery(...args) {
    counters.statements++;
    return query.apply(this, args);
  };
  const connect = proto.connect;
  proto.connect = function countedConnect(...args) {
    counters.connections++;
    return connect.apply(this, args);
  };
}

/** Instruments the root's `pg` too (txscope's own driver and the example app resolve it there). */
export function instrumentRootPg() {
  instrumentPg(`${rootDir}package.json`);
}

function options() {
  const { values } = parseArgs({
    options: {
      workload: { type: 'string' },
      seconds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '32' },
      pool: { type: 'string', default: '10' },
      tag: { type: 'string', default: String(process.pid) },
      // Workload 6 points the contender at the delay proxy instead of the database itself.
      url: { type: 'string' },
    },
    strict: true,
  });
  if (values.workload === undefined) throw new Error('--workload is required');
  return {
    workload: values.workload,
    seconds: Number(values.seconds),
    warmup: Number(values.warmup),
    concurrency: Number(values.concurrency),
    pool: Number(values.pool),
    tag: values.tag,
    url: values.url ?? benchUrl(),
  };
}

function report(result) {
  if (process.send) process.send({ type: 'result', result });
  else process.stdout.write(`${JSON.stringify(result)}\n`);
}

function fail(error) {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  if (process.send) process.send({ type: 'error', message });
  console.error(message);
  process.exitCode = 1;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * @typedef {object} WorkloadContext
 * @property {string} url the benchmark database
 * @property {number} pool pool size
 * @property {string} tag unique per process, for unique emails
 */
/**
 * @typedef {object} Workload
 * @property {(i: number) => Promise<unknown>} unit one unit of work (a signup, a read, a request)
 * @property {() => Promise<void>} close
 */
/**
 * Runs a contender: `workloads` maps a workload name to a function that sets it up.
 * @param {Record<string, (context: WorkloadContext) => Promise<Workload>>} workloads
 */
export async function runContender(workloads) {
  try {
    const o = options();
    const make = workloads[o.workload];
    if (make === undefined) throw new Error(`this contender has no workload "${o.workload}"`);
    instrumentPg();
    instrumentRootPg();
    const w = await make({ url: o.url, pool: o.pool, tag: o.tag });
    let next = 0;
    /** @param {number} seconds @param {number[] | null} latencies */
    const loop = async (seconds, latencies) => {
      const end = performance.now() + seconds * 1000;
      let failure = null;
      const worker = async () => {
        while (failure === null && performance.now() < end) {
          const i = next++;
          const started = performance.now();
          try {
            await w.unit(i);
          } catch (error) {
            failure ??= error;
            return;
          }
          latencies?.push(performance.now() - started);
        }
      };
      await Promise.all(Array.from({ length: o.concurrency }, worker));
      if (failure !== null) throw failure;
    };
    if (o.warmup > 0) await loop(o.warmup, null);
    const warmupUnits = next;
    const before = { ...counters };
    const latencies = [];
    const cpu = process.cpuUsage();
    const started = performance.now();
    await loop(o.seconds, latencies);
    const elapsedMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const units = latencies.length;
    latencies.sort((a, b) => a - b);
    await w.close();
    report({
      workload: o.workload,
      units,
      totalUnits: warmupUnits + units,
      seconds: elapsedMs / 1000,
      unitsPerSecond: units / (elapsedMs / 1000),
      cpuUsPerUnit: (used.user + used.system) / units,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      statementsPerUnit: (counters.statements - before.statements) / units,
      connectionsOpened: counters.connections,
      node: process.version,
    });
  } catch (error) {
    fail(error);
  }
}

/**
 * Runs an HTTP contender: starts the server `start` returns, tells the runner its port, and reports
 * counters when the runner says the load is over. The load comes from the runner (autocannon).
 * @param {(context: WorkloadContext) => Promise<{ server: import('node:http').Server, close(): Promise<void> }>} start
 */
export async function serveHttp(start) {
  if (!process.send) throw new Error('an HTTP contender runs under bench/run.mjs (it needs the IPC channel)');
  try {
    const o = options();
    instrumentPg();
    instrumentRootPg();
    const app = await start({ url: o.url, pool: o.pool, tag: o.tag });
    // Requests ended (answered or abandoned), counted here: the load generator stops counting at its deadline while the
    // server completes the requests in flight, whose statements the counters have seen.
    let served = 0;
    app.server.on('request', (_req, res) => res.once('close', () => served++));
    await new Promise((resolve) => app.server.listen(0, '127.0.0.1', resolve));
    let before = { ...counters };
    let cpu = process.cpuUsage();
    process.on('message', async (message) => {
      if (message?.type === 'reset') {
        before = { ...counters };
        cpu = process.cpuUsage();
        served = 0;
        process.send({ type: 'reset-done' });
      } else if (message?.type === 'finish') {
        const used = process.cpuUsage(cpu);
        const result = {
          statements: counters.statements - before.statements,
          served,
          connectionsOpened: counters.connections,
          cpuUs: used.user + used.system,
          node: process.version,
        };
        app.server.closeAllConnections?.();
        await new Promise((resolve) => app.server.close(resolve));
        await app.close();
        report(result);
        process.disconnect();
      }
    });
    process.send({ type: 'ready', port: app.server.address().port });
  } catch (error) {
    fail(error);
    process.disconnect?.();
  }
}
