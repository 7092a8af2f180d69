import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Database } from '../core/database.js';
import { checkMiddleware, requestScope, type ScopeMiddlewareOptions } from './scope.js';

/** The part of a Koa context the middleware uses: node's request and response. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
}

/** A Koa middleware. */
export type ScopeMiddleware = (ctx: KoaContextLike, next: () => Promise<unknown>) => Promise<void>;

/**
 * A Koa middleware that runs each request in a scope of `db`, from this
 * middleware until the response has finished or the client has gone. Use it first. A
 * client that disconnects aborts the scope: its open transaction rolls back and frees its
 * connection. Errors thrown downstream pass through unchanged to Koa's error handling.
 *
 * @example
 * ```ts
 * import Koa from 'koa';
 * import { middleware } from 'txscope/koa';
 *
 * const app = new Koa();
 * app.use(middleware(db, { serverTiming: true }));
 * app.use(async (ctx) => { ctx.body = await users.list(); });
 * ```
 */
export function middleware(db: Database, options?: ScopeMiddlewareOptions): ScopeMiddleware {
  checkMiddleware(db, options, { where: 'txscope/koa middleware' });
  return async function txscope(ctx, next) {
    // Koa writes the response once the middleware chain resolved, so this resolves with
    // `next()`; the scope itself waits for the response to finish.
    await requestScope(db, { req: ctx.req, res: ctx.res, options }, next);
  };
}
