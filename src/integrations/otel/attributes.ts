/**
 * OpenTelemetry attribute names and values: the database client semantic conventions where they
 * apply (`db.*`, `server.*`, `error.type`), `txscope.*` for the rest. Never a statement value or a
 * password: labels are `database@host:port`, errors are named by their code.
 */
import type { Attributes } from '@opentelemetry/api';
import { TxScopeError } from '../../errors.js';

export const attr = {
  system: 'db.system.name',
  namespace: 'db.namespace',
  operation: 'db.operation.name',
  queryText: 'db.query.text',
  poolName: 'db.client.connection.pool.name',
  connectionState: 'db.client.connection.state',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  errorType: 'error.type',
  database: 'txscope.database',
  propagation: 'txscope.propagation',
  isolation: 'txscope.isolation',
  readOnly: 'txscope.read_only',
  timeoutMs: 'txscope.timeout_ms',
  maxAttempts: 'txscope.max_attempts',
  attempt: 'txscope.attempt',
  attempts: 'txscope.attempts',
  outcome: 'txscope.outcome',
  reason: 'txscope.rollback.reason',
  statements: 'txscope.statements',
  waitMs: 'txscope.connection.wait_ms',
  holdMs: 'txscope.connection.hold_ms',
  transactionId: 'txscope.transaction.id',
  savepoint: 'txscope.savepoint',
  delayMs: 'txscope.retry.delay_ms',
  durationMs: 'txscope.duration_ms',
} as const;

/** `db.system.name` of a txscope dialect. */
export function systemName(dialect: string): string {
  return dialect === 'postgres' ? 'postgresql' : dialect;
}

const byLabel = new Map<string, Attributes>();

/** `db.namespace` and `server.*` from a driver label (`database@host:port`, `sqlite (file)`). */
export function labelAttributes(label: string): Attributes {
  let attributes = byLabel.get(label);
  if (attributes === undefined) {
    attributes = parseLabel(label);
    if (byLabel.size < 100) byLabel.set(label, attributes);
  }
  return attributes;
}

function parseLabel(label: string): Attributes {
  const at = label.lastIndexOf('@');
  if (at < 0) return { [attr.namespace]: label };
  const server = label.slice(at + 1);
  const colon = server.lastIndexOf(':');
  const port = colon < 0 ? Number.NaN : Number(server.slice(colon + 1));
  return {
    [attr.namespace]: label.slice(0, at),
    [attr.serverAddress]: Number.isInteger(port) ? server.slice(0, colon) : server,
    ...(Number.isInteger(port) ? { [attr.serverPort]: port } : {}),
  };
}

/** `error.type`: a TxScopeError's code, a driver error's code (SQLSTATE, `ER_…`), else its class. */
export function errorType(error: unknown): string {
  if (error instanceof TxScopeError) return error.code;
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    if (typeof code === 'number') return String(code);
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name !== '') return name;
  }
  return '_OTHER';
}

/** A message for the span status: TxScopeError messages carry no values; driver messages may, so only their type. */
export function errorMessage(error: unknown): string {
  if (error instanceof TxScopeError) return error.message;
  return errorType(error);
}

/** BEGIN, COMMIT, ROLLBACK and savepoint statements: not counted as the transaction's statements. */
const control = /^\s*(begin|start transaction|set transaction|commit|rollback|savepoint|release)\b/i;

export function isControl(text: string): boolean {
  return control.test(text);
}
