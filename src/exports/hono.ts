/** `txscope/hono`: the Hono middleware. */
export { type HonoContextLike, middleware, type ScopeMiddleware } from '../web/hono.js';
export type { ReadYourWritesOptions } from '../web/positions.js';
export type { ScopeMiddlewareOptions } from '../web/scope.js';
