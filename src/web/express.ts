import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Database } from '../core/database.js';
import { checkMiddleware, requestScope, type ScopeMiddlewareOptions } from './scope.js';

/** An Express (4 or 5) middleware: node's request and response, and `next`. */
export type ScopeMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

/**
 * An Express middleware (Express 4 and 5) that runs each request in a scope of `db`, from
 * this middleware until the response has finished or the client has gone. Mount it first,
 * before body parsers and routes. A client that disconnects aborts the scope: its open
 * transaction rolls back and frees its connection.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { middleware } from 'txscope/express';
 *
 * const app = express();
 * app.use(middleware(db, { serverTiming: true }));
 * app.use(express.json());
 * app.post('/users', async (req, res) => res.status(201).json(await users.signUp(req.body)));
 * ```
 */
export function middleware(db: Database, options?: ScopeMiddlewareOptions): ScopeMiddleware {
  checkMiddleware(db, options, { where: 'txscope/express middleware' });
  return function txscope(req, res, next) {
    let passed = false;
    requestScope(db, { req, res, options }, () => {
      passed = true;
      next();
    }).catch((error: unknown) => {
      // Only a scope that could not start (a closed database) lands here: hand it to
      // Express's error handling, once.
      if (!passed) next(error);
    });
  };
}
