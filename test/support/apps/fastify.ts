import Fastify from 'fastify';
import type { Database } from 'txscope';
import { plugin } from 'txscope/fastify';
import { running } from './listen.js';
import { orders, type RequestBody, type RunningApp, routes, scopeOptions } from './service.js';

export async function startFastify(db: Database): Promise<RunningApp> {
  const r = routes(orders);
  const app = Fastify();
  await app.register(plugin, { db, ...scopeOptions });
  app.get('/ping', async () => r.ping());
  app.post<{ Body: RequestBody }>('/orders', async (request, reply) =>
    reply.code(201).send(await r.orders(request.body)),
  );
  app.post<{ Body: RequestBody }>('/fail', async (request) => r.fail(request.body));
  app.post<{ Body: RequestBody }>('/hang', async (request) => r.hang(request.body));
  app.post<{ Body: RequestBody }>('/leak', async (request) => r.leak(request.body));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return running(app.server, () => app.close());
}
