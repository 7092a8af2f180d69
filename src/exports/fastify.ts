/** `txscope/fastify`: the Fastify plugin. */
export { plugin, type TxScopePlugin } from '../web/fastify.js';
export type {
  FastifyInstanceLike,
  FastifyReplyLike,
  FastifyRequestLike,
  RequestHook,
  TxScopePluginOptions,
} from '../web/fastify-hooks.js';
export type { ScopeMiddlewareOptions } from '../web/scope.js';
