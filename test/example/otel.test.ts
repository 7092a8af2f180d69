/**
 * `OTEL=console npm start`: the example exports its spans to the console, a newcomer's first look
 * at txscope's transaction span under the HTTP request's span, statement spans under it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FreshDatabase, freshPgDatabase } from '../support/databases.js';
import { buildExample, type RunningExample, runExampleToExit, startExample } from '../support/example-app.js';

let fresh: FreshDatabase;
let app: RunningExample | undefined;

beforeAll(async () => {
  [fresh] = await Promise.all([freshPgDatabase(), buildExample()]);
}, 180_000);

afterAll(async () => {
  await app?.stop();
  await fresh?.drop();
});

it('OTEL=console prints the request transaction span, a child of the HTTP server span', async () => {
  app = await startExample({ OTEL: 'console', DATABASE_URL: fresh.url, PORT: '0' });
  expect(app.output()).toContain('OpenTelemetry: spans to the console');
  const response = await fetch(`${app.url}/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'otel@example.com', name: 'Otel', bio: 'secret-bio-value' }),
  });
  expect(response.status).toBe(201);
  const deadline = Date.now() + 10_000;
  const requestSpan = () =>
    app
      ?.output()
      .split(/\n(?=\{)/)
      .find(
        (block) => block.includes("name: 'transaction") && !block.includes('parentSpanContext: undefined'),
      );
  const serverSpan = /name: 'POST[^']*',\s+id: '(\w+)',\s+kind: 1,/;
  const exported = () => requestSpan() !== undefined && serverSpan.test(app?.output() ?? '');
  while (!exported() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const span = requestSpan() ?? app.output();
  expect(span).toContain("'txscope.outcome': 'committed'");
  expect(span).toContain("'db.system.name': 'postgresql'");
  expect(span).toContain("'txscope.database': 'user-service'");
  // The HTTP server span and pg statement spans are there too.
  const serverId = serverSpan.exec(app.output())?.[1];
  expect(serverId).toBeDefined();
  expect(span).toContain(`spanId: '${serverId}'`);
  expect(app.output()).toContain("name: 'pg.query:INSERT");
  // No values of the request's statements in txscope's span.
  expect(span).not.toContain('secret-bio-value');
  expect(await app.stop()).toBe(0);
  app = undefined;
}, 60_000);

it('an OTEL value it does not know: one message, exit code 1', async () => {
  const run = await runExampleToExit({ OTEL: 'jaeger', DATABASE_URL: fresh.url, PORT: '0' });
  expect(run.code).toBe(1);
  expect(run.stderr).toContain(
    'the txscope example did not start: OTEL=jaeger: this example exports to the console only',
  );
  expect(run.stdout + run.stderr).not.toMatch(/^\s+at /m);
}, 60_000);
