// A TCP proxy on loopback that holds every chunk for a fixed delay in each direction, so the
// database looks `2 × delay` away (workload 6). Order is kept: the delay is the same for every
// chunk, so the FIFO of chunks is also the order of their due times, and an end of stream queues
// behind the data that came before it.
//
// Why a worker thread: setTimeout has 1 ms granularity, far coarser than the 0.25 ms we want, and
// spinning the event loop with setImmediate until a chunk is due would burn a whole core on a
// 2-core machine that also runs PostgreSQL and the contender. The worker sleeps in a futex
// (`Atomics.wait`, fractional milliseconds) until the head of the queue is due and wakes the
// proxy's event loop with a message. The wake-up is consistently ~60-100 µs late (kernel timer
// slack plus the message's hop), so the proxy measures that once at start and aims that much
// earlier; `stats()` reports how late chunks really left.
//
//   node bench/lib/delay-proxy.mjs [--delay-ms 0.25] [--port 0]   (to PostgreSQL of the bench)
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const base = process.hrtime.bigint();
/** Nanoseconds on the monotonic clock both threads share. */
const now = () => Number(process.hrtime.bigint() - base);

// Shared with the worker: [generation, stop] as Int32, then the wake-up time (ns, 0 = none).
const timerSource = `
const { workerData, parentPort } = require('node:worker_threads');
const control = new Int32Array(workerData.shared, 0, 2);
const wakeAt = new Float64Array(workerData.shared, 8, 1);
const base = workerData.base;
const now = () => Number(process.hrtime.bigint() - base);
for (;;) {
  const generation = Atomics.load(control, 0);
  if (Atomics.load(control, 1) === 1) break;
  const at = wakeAt[0];
  if (at === 0) {
    Atomics.wait(control, 0, generation);
    continue;
  }
  const ms = (at - now()) / 1e6;
  if (ms > 0) {
    // Returns early when the proxy re-arms (the generation changes).
    Atomics.wait(control, 0, generation, ms);
    continue;
  }
  wakeAt[0] = 0;
  parentPort.postMessage(0);
}`;

const END = Symbol('end');

/** Percentile of a sorted array. */
function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * @typedef {object} DelayProxyStats
 * @property {number} connections accepted since the last reset
 * @property {number} upChunks chunks client → server
 * @property {number} downChunks chunks server → client
 * @property {number} lateP50Us how late a chunk left after its due time, median, µs (negative: early)
 * @property {number} lateP99Us the same, 99th percentile
 * @property {number} lateMaxUs the same, maximum
 * @property {number} leadUs how much earlier than due the timer is aimed (calibrated at start)
 */

/**
 * Starts the proxy. Resolves when it listens and its timer is calibrated.
 * @param {{ targetHost: string, targetPort: number, delayMs?: number, port?: number }} options
 */
export async function startDelayProxy({ targetHost, targetPort, delayMs = 0.25, port = 0 }) {
  let delayNs = delayMs * 1e6;
  const shared = new SharedArrayBuffer(16);
  const control = new Int32Array(shared, 0, 2);
  const wakeAt = new Float64Array(shared, 8, 1);
  const worker = new Worker(timerSource, { eval: true, workerData: { shared, base } });

  /** @type {{ due: number, socket: net.Socket, chunk: Buffer | typeof END }[]} */
  let queue = [];
  let head = 0;
  let armed = false;
  let leadNs = 0;
  // A tick that comes this early still sends what is due: re-arming for a few µs costs more than it saves.
  const toleranceNs = 15_000;
  const late = new Float64Array(1 << 16);
  let lateCount = 0;
  let lateMax = 0;
  let stats = { connections: 0, upChunks: 0, downChunks: 0 };

  const arm = (due) => {
    armed = true;
    wakeAt[0] = Math.max(1, due - leadNs);
    Atomics.add(control, 0, 1);
    Atomics.notify(control, 0);
  };

  /** @type {(() => void) | null} while calibrating, what a tick does instead */
  let onTick = null;
  worker.on('message', () => {
    armed = false;
    if (onTick !== null) onTick();
    else flush();
  });

  function flush() {
    const t = now();
    while (head < queue.length && queue[head].due <= t + toleranceNs) {
      const item = queue[head];
      queue[head++] = undefined;
      const lateNs = t - item.due;
      late[lateCount++ & (late.length - 1)] = lateNs;
      if (lateNs > lateMax) lateMax = lateNs;
      if (item.socket.destroyed) continue;
      if (item.chunk === END) item.socket.end();
      else item.socket.write(item.chunk);
    }
    if (head === queue.length) {
      queue = [];
      head = 0;
    } else {
      if (head > 4096) {
        queue = queue.slice(head);
        head = 0;
      }
      arm(queue[head].due);
    }
  }

  const enqueue = (socket, chunk) => {
    queue.push({ due: now() + delayNs, socket, chunk });
    if (!armed) arm(queue[head].due);
  };

  // Calibration: how late the timer wakes us when aimed at a moment `delayMs` ahead.
  leadNs = await new Promise((resolve) => {
    const samples = [];
    let target = 0;
    onTick = () => {
      samples.push(now() - target);
      if (samples.length === 300) {
        samples.sort((a, b) => a - b);
        // Aim at the 10th percentile: most ticks arrive just after the due time, few before it.
        resolve(Math.max(0, percentile(samples, 10)));
        return;
      }
      target = now() + delayNs;
      arm(target);
    };
    target = now() + delayNs;
    arm(target);
  });
  onTick = null;
  // From now on the proxy's sockets keep the process alive, not its timer.
  worker.unref();

  const sockets = new Set();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    stats.connections++;
    const upstream = net.connect({ host: targetHost, port: targetPort, allowHalfOpen: true, noDelay: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk) => {
      stats.upChunks++;
      enqueue(upstream, chunk);
    });
    upstream.on('data', (chunk) => {
      stats.downChunks++;
      enqueue(client, chunk);
    });
    client.on('end', () => enqueue(upstream, END));
    upstream.on('end', () => enqueue(client, END));
    // A side that closed for good takes the other with it once its delayed data has gone.
    client.on('close', () => enqueue(upstream, END));
    upstream.on('close', () => enqueue(client, END));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });

  return {
    /** @type {number} */
    port: /** @type {net.AddressInfo} */ (server.address()).port,
    /** The hold of every chunk, each way, in ms. */
    get delayMs() {
      return delayNs / 1e6;
    },
    /** Changes the hold of the chunks that arrive from now on; the queue still leaves in arrival order. */
    setDelayMs(ms) {
      delayNs = ms * 1e6;
    },
    /** @returns {DelayProxyStats} */
    stats() {
      const n = Math.min(lateCount, late.length);
      const sorted = Array.from(late.subarray(0, n)).sort((a, b) => a - b);
      return {
        ...stats,
        lateP50Us: percentile(sorted, 50) / 1000,
        lateP99Us: percentile(sorted, 99) / 1000,
        lateMaxUs: lateMax / 1000,
        leadUs: leadNs / 1000,
      };
    },
    resetStats() {
      stats = { connections: 0, upChunks: 0, downChunks: 0 };
      lateCount = 0;
      lateMax = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
      Atomics.store(control, 1, 1);
      Atomics.add(control, 0, 1);
      Atomics.notify(control, 0);
      await worker.terminate();
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: { 'delay-ms': { type: 'string', default: '0.25' }, port: { type: 'string', default: '0' } },
  });
  const { adminUrl } = await import('./config.mjs');
  const target = new URL(adminUrl());
  const proxy = await startDelayProxy({
    targetHost: target.hostname,
    targetPort: Number(target.port || 5432),
    delayMs: Number(values['delay-ms']),
    port: Number(values.port),
  });
  console.log(
    `delay proxy on 127.0.0.1:${proxy.port} → ${target.hostname}:${target.port || 5432}, ` +
      `${proxy.delayMs} ms each way (timer aimed ${proxy.stats().leadUs.toFixed(0)} µs early); Ctrl-C stops it`,
  );
  setInterval(() => {
    const s = proxy.stats();
    if (s.upChunks > 0)
      console.log(
        `${s.connections} connections, ${s.upChunks} up / ${s.downChunks} down chunks; late p50 ${s.lateP50Us.toFixed(0)} µs, p99 ${s.lateP99Us.toFixed(0)} µs`,
      );
  }, 5000);
}
