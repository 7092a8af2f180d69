/** `txscope/nestjs`: the NestJS module. */
export {
  TXSCOPE_DATABASE,
  type TxScopeDynamicModule,
  TxScopeModule,
  type TxScopeModuleOptions,
} from '../web/nestjs.js';
export type { ScopeMiddlewareOptions } from '../web/scope.js';
