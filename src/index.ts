export {
  type CurrentState,
  createDatabase,
  type Database,
  type DatabaseOptions,
  type DatabaseStats,
  type ScopeOptions,
} from './database.js';
export { Transactional, type TransactionalDecorator } from './decorator.js';
export type {
  ConnectionEvent,
  ErrorEvent,
  LeakEvent,
  QueryEvent,
  TransactionEvent,
} from './diagnostics.js';
export type {
  AcquireIntent,
  ConnectionStatus,
  Dialect,
  Driver,
  DriverConnection,
  DriverResult,
  ErrorKind,
  IsolationLevel,
  PoolCounts,
  QueryResult,
} from './driver.js';
export { ErrorCode, isTxScopeError, TxScopeError } from './errors.js';
export { Propagation, type RetryOptions, type TransactionOptions } from './options.js';
export { isRetryable } from './retry.js';
export type { ScopeInfo } from './session.js';
export { type CompiledStatement, compile, SqlFragment, sql } from './sql.js';
export type { CompletionStatus } from './transaction.js';
