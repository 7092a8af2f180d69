import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Database } from '../core/database.js';
import {
  checkMiddleware,
  requestContext,
  requestScope,
  type ScopeMiddlewareOptions,
  serverTimingEntry,
} from './scope.js';

/** The part of a Hono context the middleware uses. */
export interface HonoContextLike {
  /** On `@hono/node-server`: `{ incoming, outgoing }`, node's request and response. */
  env: unknown;
  req: { raw: Request };
  header(name: string, value: string, options?: { append?: boolean }): void;
}

/** A Hono middleware. */
export type ScopeMiddleware = (c: HonoContextLike, next: () => Promise<void>) => Promise<void>;

interface NodeBindings {
  incoming?: IncomingMessage;
  outgoing?: ServerResponse;
}

function nodeBindings(env: unknown): { incoming: IncomingMessage; outgoing: ServerResponse } | null {
  if (env === null || typeof env !== 'object') return null;
  const { incoming, outgoing } = env as NodeBindings;
  if (incoming === undefined || outgoing === undefined || typeof outgoing.writeHead !== 'function')
    return null;
  return { incoming, outgoing };
}

/**
 * A Hono middleware that runs each request in a scope of `db`. On `@hono/node-server` the
 * scope lasts until the response has finished or the client has gone, and a client that
 * disconnects aborts it (its open transaction rolls back and frees its connection).
 * Elsewhere (other runtimes, `app.request()`) it lasts for the handlers and follows the
 * request's abort signal.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { middleware } from 'txscope/hono';
 *
 * const app = new Hono();
 * app.use(middleware(db, { serverTiming: true }));
 * app.post('/users', async (c) => c.json(await users.signUp(await c.req.json()), 201));
 * ```
 */
export function middleware(db: Database, options?: ScopeMiddlewareOptions): ScopeMiddleware {
  checkMiddleware(db, options, { where: 'txscope/hono middleware' });
  return async function txscope(c, next) {
    const node = nodeBindings(c.env);
    if (node !== null) {
      await requestScope(db, { req: node.incoming, res: node.outgoing, options }, next);
      return;
    }
    await requestContext(db, () =>
      db.scope(
        async () => {
          await next();
          const scope = db.current.scope;
          if (options?.serverTiming === true && scope !== null) {
            c.header('Server-Timing', serverTimingEntry(scope), { append: true });
          }
        },
        { signal: c.req.raw.signal },
      ),
    );
  };
}
