/**
 * PostgreSQL's protocol-level cancel: a CancelRequest with the connection's own process id and
 * secret key, on a socket of its own. It needs no login, and a pooler in front of the server
 * (PgBouncer) forwards it to the server connection that client is using, where
 * `pg_cancel_backend(pid)` would aim at a pid that is the pooler's, not the server's.
 */
import { connect, type Socket } from 'node:net';

/** CancelRequest's protocol code: 1234 in the high 16 bits, 5678 in the low. */
const CANCEL_REQUEST_CODE = 80877102;
const cancelTimeoutMs = 5000;

export interface CancelTarget {
  /** The host the connection was opened to, or a Unix socket directory. */
  readonly host: string;
  readonly port: number;
  readonly processID: number;
  readonly secretKey: number;
}

/**
 * Sends the CancelRequest and resolves once the server (or pooler) has closed the socket, which
 * it does after acting on it: until then the cancel may still land, so nothing more is sent on
 * the cancelled connection. A half-closed socket would get the cancel dropped by PgBouncer.
 */
export function sendCancelRequest(target: CancelTarget): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const socket: Socket = target.host.startsWith('/')
      ? connect(`${target.host}/.s.PGSQL.${target.port}`)
      : connect(target.port, target.host);
    // Never waited for longer than this: the server may be gone; the cancel has then nothing to hit.
    const timer = setTimeout(() => socket.destroy(), cancelTimeoutMs);
    socket.once('connect', () => {
      const packet = Buffer.alloc(16);
      packet.writeInt32BE(16, 0);
      packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
      packet.writeInt32BE(target.processID, 8);
      packet.writeInt32BE(target.secretKey, 12);
      socket.write(packet);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume();
  });
}
