/** `txscope/http`: a scope per request for plain `node:http`. */
export { type WithScopeOptions, withScope } from '../web/http.js';
export type { ReadYourWritesOptions } from '../web/positions.js';
export type { ScopeMiddlewareOptions } from '../web/scope.js';
