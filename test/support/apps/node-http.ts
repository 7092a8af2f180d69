import { createServer } from 'node:http';
import type { Database } from 'txscope';
import { withScope } from 'txscope/http';
import { listen } from './listen.js';
import { orders, type RequestBody, type RunningApp, routes, scopeOptions } from './service.js';

export function startNodeHttp(db: Database): Promise<RunningApp> {
  const r = routes(orders);
  const handler = withScope(
    db,
    async (req, res) => {
      const route = `${req.method} ${req.url}`;
      let body: RequestBody = { requestId: '' };
      if (req.method === 'POST') {
        // Callback-style reading: the scope survives the request's own events.
        body = await new Promise<RequestBody>((resolve, reject) => {
          const chunks: Buffer[] = [];
          req.on('data', (chunk: Buffer) => chunks.push(chunk));
          req.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as RequestBody));
          req.on('error', reject);
        });
      }
      const send = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (route === 'GET /ping') send(200, r.ping());
      else if (route === 'POST /orders') send(201, await r.orders(body));
      else if (route === 'POST /fail') send(200, await r.fail(body));
      else if (route === 'POST /hang') send(200, await r.hang(body));
      else if (route === 'POST /leak') send(200, r.leak(body));
      else send(404, { error: 'not found' });
    },
    {
      ...scopeOptions,
      onError: (_error, _req, res) => {
        res.statusCode = 500;
        res.end('failed');
      },
    },
  );
  return listen(createServer(handler));
}
