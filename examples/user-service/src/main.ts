// `npm start`: the example user service on an embedded PostgreSQL (or DATABASE_URL's).
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { startEmbeddedPostgres } from './embedded.js';

const dataDir = resolve(process.env.DATA_DIR ?? '.txscope/example-data');
const started = performance.now();

let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
if (process.env.DATABASE_URL === undefined) {
  console.log(`starting an embedded PostgreSQL, data in ${dataDir}`);
  embedded = await startEmbeddedPostgres(dataDir);
  process.env.DATABASE_URL = embedded.url;
}

// Imported after DATABASE_URL is known: the db module reads it.
const { db } = await import('./db.js');
const { migrate } = await import('./schema.js');
const { createApp } = await import('./app.js');

await migrate();
const { app, activity } = createApp();
const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
await new Promise<void>((ready) => server.once('listening', ready));
const { port } = server.address() as AddressInfo;
const url = `http://127.0.0.1:${port}`;

console.log(`
txscope example ready in ${Math.round(performance.now() - started)} ms: ${url}
open ${url}/ to watch requests, statements, transactions and the pool live. Try:

  curl -s -X POST ${url}/users -H 'content-type: application/json' -d '{"email":"ada@example.com","name":"Ada","bio":"first"}'
  curl -s ${url}/users/1
  curl -s -X POST ${url}/transfers -H 'content-type: application/json' -d '{"from":1,"to":2,"amount":100}'
`);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping`);
  activity.close();
  await new Promise<void>((done) => {
    server.close(() => done());
    server.closeIdleConnections();
  });
  await db.close();
  await embedded?.stop();
  console.log('stopped');
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
