import { createServer } from 'node:http';
import Koa from 'koa';
import type { Database } from 'txscope';
import { middleware } from 'txscope/koa';
import { listen } from './listen.js';
import { orders, type RequestBody, type RunningApp, routes, scopeOptions } from './service.js';

// Koa has no body parser of its own; reading the stream by hand is what one does.
async function json(req: NodeJS.ReadableStream): Promise<RequestBody> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.from(chunk));
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as RequestBody;
}

export function startKoa(db: Database): Promise<RunningApp> {
  const r = routes(orders);
  const app = new Koa();
  app.silent = true; // the 500s of the failing route are expected
  app.use(middleware(db, scopeOptions));
  app.use(async (ctx) => {
    const route = `${ctx.method} ${ctx.path}`;
    if (route === 'GET /ping') {
      ctx.body = r.ping();
    } else if (route === 'POST /orders') {
      ctx.status = 201;
      ctx.body = await r.orders(await json(ctx.req));
    } else if (route === 'POST /fail') {
      ctx.body = await r.fail(await json(ctx.req));
    } else if (route === 'POST /hang') {
      ctx.body = await r.hang(await json(ctx.req));
    } else if (route === 'POST /leak') {
      ctx.body = r.leak(await json(ctx.req));
    }
  });
  return listen(createServer(app.callback()));
}
