import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { Database } from 'txscope';
import { middleware } from 'txscope/hono';
import { running } from './listen.js';
import { orders, type RequestBody, type RunningApp, routes, scopeOptions } from './service.js';

export async function startHono(db: Database): Promise<RunningApp> {
  const r = routes(orders);
  const app = new Hono();
  app.use(middleware(db, scopeOptions));
  app.onError((_error, c) => c.text('failed', 500)); // the default logs the expected failures
  app.get('/ping', (c) => c.json(r.ping()));
  app.post('/orders', async (c) => c.json(await r.orders(await c.req.json<RequestBody>()), 201));
  app.post('/fail', async (c) => c.json(await r.fail(await c.req.json<RequestBody>())));
  app.post('/hang', async (c) => c.json(await r.hang(await c.req.json<RequestBody>())));
  app.post('/leak', async (c) => c.json(r.leak(await c.req.json<RequestBody>())));
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  return running(server as import('node:http').Server);
}
