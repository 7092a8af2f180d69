/** `txscope/koa`: the Koa middleware. */
export { type KoaContextLike, middleware, type ScopeMiddleware } from '../web/koa.js';
export type { ScopeMiddlewareOptions } from '../web/scope.js';
