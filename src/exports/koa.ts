/** `txscope/koa`: the Koa middleware. */
export { type KoaContextLike, middleware, type ScopeMiddleware } from '../web/koa.js';
export type { ReadYourWritesOptions } from '../web/positions.js';
export type { ScopeMiddlewareOptions } from '../web/scope.js';
