// `npm start`: the example user service on an embedded PostgreSQL (or DATABASE_URL's).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Activity } from './activity.js';
import { type EmbeddedPostgres, EmbeddedPostgresError, startEmbeddedPostgres } from './embedded.js';
import { checkDatabase, describeError, listen, portFromEnv, redactUrl, StartupError } from './startup.js';

const started = performance.now();

// What is running, so that a failure at any step stops whatever the steps before it started.
let embedded: EmbeddedPostgres | undefined;
let server: Server | undefined;
let activity: Activity | undefined;
let closeDatabase: (() => Promise<void>) | undefined;
let stopTelemetry: (() => Promise<void>) | undefined;
let state: 'starting' | 'ready' | 'stopping' = 'starting';

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(signal));

try {
  await start();
  state = 'ready';
} catch (error) {
  await release();
  console.error(`\nthe txscope example did not start: ${startupMessage(error)}`);
  process.exit(1);
}

async function start(): Promise<void> {
  const host = process.env.HOST ?? '127.0.0.1';
  const port = portFromEnv(process.env.PORT, 3000);
  // Before the database: a taken port is the likeliest failure and the quickest to report.
  if (port !== 0) {
    const probe = createServer();
    await listen(probe, port, host);
    await new Promise((closed) => probe.close(closed));
  }

  let databaseUrl = process.env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl === undefined) {
    const dataDir = resolve(process.env.DATA_DIR ?? '.txscope/example-data');
    console.log(`starting an embedded PostgreSQL for ${dataDir}`);
    embedded = await startEmbeddedPostgres({
      dataDir,
      password: 'txscope-example',
      database: 'app',
      report: (line) => console.log(`  ${line}`),
    });
    databaseUrl = embedded.url;
  } else {
    await checkDatabase(databaseUrl);
  }
  process.env.DATABASE_URL = databaseUrl;

  // OTEL=console: before the db module loads pg, so that the pg instrumentation patches it.
  const otel = process.env.OTEL?.trim();
  if (otel) stopTelemetry = (await import('./telemetry.js')).startTelemetry(otel);

  // Imported once DATABASE_URL is known: the db module reads it.
  const { db } = await import('./db.js');
  closeDatabase = () => db.close();
  const { migrate } = await import('./schema.js');
  const { createApp } = await import('./app.js');
  try {
    await migrate();
  } catch (error) {
    throw new StartupError(
      `could not create the example's tables in ${redactUrl(databaseUrl)}: ${describeError(error)}`,
    );
  }
  const created = createApp();
  activity = created.activity;
  server = createServer(created.app);
  await listen(server, port, host);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  console.log(`
txscope example ready in ${Math.round(performance.now() - started)} ms: ${url}
open ${url}/ to watch requests, statements, transactions and the pool live. Try:

  curl -s -X POST ${url}/users -H 'content-type: application/json' -d '{"email":"ada@example.com","name":"Ada","bio":"first"}'
  curl -s ${url}/users/1
  curl -s -X POST ${url}/transfers -H 'content-type: application/json' -d '{"from":1,"to":2,"amount":100}'
`);
}

/** Stops, in order, whatever has been started: the HTTP server, the pool, the database server. */
async function release(): Promise<void> {
  activity?.close();
  if (server?.listening) {
    const closing = new Promise((closed) => server?.close(closed));
    server.closeIdleConnections();
    await closing;
  }
  await closeDatabase?.().catch(() => {});
  await stopTelemetry?.().catch(() => {});
  await embedded?.stop();
}

async function stop(signal: string): Promise<void> {
  if (state === 'stopping') return;
  const interrupted = state === 'starting';
  state = 'stopping';
  console.log(`${signal}: stopping`);
  // A start still under way is abandoned: exiting stops the embedded PostgreSQL or its initdb
  // (embedded.ts stops its children on exit).
  if (interrupted) process.exit(130);
  await release();
  console.log('stopped');
  process.exit(0);
}

function startupMessage(error: unknown): string {
  if (error instanceof EmbeddedPostgresError) {
    return (
      `the embedded PostgreSQL did not start: ${error.message}` +
      (error.logFile === undefined ? '' : `\nits log: ${error.logFile}`) +
      '\n(DATABASE_URL=postgres://user:password@host:5432/database npm start uses a server of your own instead)'
    );
  }
  if (error instanceof StartupError) return error.message;
  return describeError(error);
}
