/** `txscope/express`: the Express (4 and 5) middleware. */
export { middleware, type ScopeMiddleware } from '../web/express.js';
export type { ReadYourWritesOptions } from '../web/positions.js';
export type { ScopeMiddlewareOptions } from '../web/scope.js';
