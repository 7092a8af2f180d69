import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Database } from '../core/database.js';
import { checkMiddleware, invalid, requestScope, type ScopeMiddlewareOptions } from './scope.js';

/** Options of {@link withScope}. */
export interface WithScopeOptions extends ScopeMiddlewareOptions {
  /**
   * Called when the handler throws or rejects, after its transaction rolled back. The
   * default answers 500 (or destroys a response whose headers are already sent) and
   * logs the error with `console.error`.
   */
  onError?: (error: unknown, req: IncomingMessage, res: ServerResponse) => void;
}

function defaultOnError(error: unknown, _req: IncomingMessage, res: ServerResponse): void {
  console.error(error);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = 500;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end('Internal Server Error');
}

/**
 * Wraps a `node:http` request handler so that each request runs in a scope of `db`. The
 * scope lasts until the response has finished (or the client has gone) and the handler
 * has settled; a client that disconnects first aborts it, rolling back its open
 * transaction. A handler that throws answers 500 by default (see `onError`).
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { withScope } from 'txscope/http';
 *
 * createServer(withScope(db, async (req, res) => {
 *   const user = await users.signUp(await readJson(req)); // @Transactional() inside
 *   res.end(JSON.stringify(user));
 * }, { serverTiming: true })).listen(3000);
 * ```
 */
export function withScope<
  Req extends IncomingMessage = IncomingMessage,
  Res extends ServerResponse<Req> = ServerResponse<Req>,
>(
  db: Database,
  handler: (req: Req, res: Res) => unknown,
  options?: WithScopeOptions,
): (req: Req, res: Res) => Promise<void> {
  checkMiddleware(db, options, { where: 'withScope', extraKeys: ['onError'] });
  if (typeof handler !== 'function')
    throw invalid('withScope: handler', 'a function (req, res) => ...', handler);
  const onError = options?.onError ?? defaultOnError;
  if (typeof onError !== 'function') throw invalid('withScope: onError', 'a function', onError);
  return async function scopedHandler(req: Req, res: Res): Promise<void> {
    try {
      await requestScope(db, { req, res, options }, () => handler(req, res));
    } catch (error) {
      onError(error, req, res);
    }
  };
}
