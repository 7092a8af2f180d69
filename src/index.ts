/** `txscope`: the core. It imports no driver, framework or query builder. */
export {
  type CurrentState,
  createDatabase,
  type Database,
  type DatabaseStats,
} from './core/database.js';
export { Transactional, type TransactionalDecorator } from './core/decorator.js';
export type { CompletionStatus } from './core/hooks.js';
export type { ReplicaHealth, TargetStats } from './core/replica-target.js';
export { isRetryable } from './core/retry.js';
export type { ScopeInfo } from './core/scope.js';
export type {
  BoundaryEvent,
  ConnectionEvent,
  ErrorEvent,
  FrameEvent,
  LeakEvent,
  QueryEvent,
  RouteEvent,
  TransactionEvent,
} from './diagnostics.js';
export type {
  AcquireIntent,
  BeginRequest,
  ConnectionStatus,
  Dialect,
  DialectName,
  Driver,
  DriverConnection,
  DriverResult,
  ErrorKind,
  IsolationLevel,
  PoolCounts,
  QueryResult,
  ReplicationDialect,
} from './driver.js';
export { ErrorCode, isTxScopeError, TxScopeError } from './errors.js';
export {
  type DatabaseOptions,
  Propagation,
  type RetryOptions,
  type ScopeOptions,
  type TransactionOptions,
} from './options.js';
export { type CompiledStatement, compile, SqlFragment, sql } from './sql.js';
