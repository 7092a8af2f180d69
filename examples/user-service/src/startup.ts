// What can stop `npm start` before it serves anything, each turned into one message that says
// what is wrong and what to do about it.
import type { Server } from 'node:net';
import pg from 'pg';

/** A startup failure whose message is complete: main prints it and exits 1. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** PORT as a number, or a StartupError that says what is wrong with it. */
export function portFromEnv(value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new StartupError(`PORT=${value} is not a port number: use 0 to 65535 (0 picks a free one).`);
  }
  return port;
}

/** Resolves once `server` listens; rejects with what to do when the address cannot be had. */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      reject(listenError(error, port, host));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

function listenError(error: NodeJS.ErrnoException, port: number, host: string): StartupError {
  const other = port === 65_535 ? 3000 : port + 1;
  switch (error.code) {
    case 'EADDRINUSE':
      return new StartupError(
        `port ${port} on ${host} is already in use (another \`npm start\`, or another program). ` +
          `Stop what holds it, or pick another port: PORT=${other} npm start (PORT=0 picks a free one).`,
      );
    case 'EACCES':
      return new StartupError(
        `port ${port} needs privileges this user does not have. Pick a port above 1023: PORT=3000 npm start`,
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(
        `cannot listen on HOST=${host}: it is not an address of this machine (${error.code}). ` +
          'Use 127.0.0.1, or 0.0.0.0 for every interface.',
      );
    default:
      return new StartupError(`cannot listen on ${host}:${port}: ${describeError(error)}`);
  }
}

/** Throws a StartupError naming the (redacted) URL, the cause and what to check, unless `select 1` works. */
export async function checkDatabase(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  // A socket error after a failed connect would otherwise be an unhandled 'error' event.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    throw new StartupError(
      `cannot reach the database at DATABASE_URL=${redactUrl(url)}: ${describeError(error)}.\n` +
        `${databaseHint(error, url)}\n` +
        'Or unset DATABASE_URL to run the example on an embedded PostgreSQL.',
    );
  } finally {
    await client.end().catch(() => {});
  }
}

function databaseHint(error: unknown, url: string): string {
  const codes = errorCodes(error);
  const has = (...wanted: string[]) => wanted.some((code) => codes.includes(code));
  if (has('ECONNREFUSED')) {
    return 'Nothing listens there: check that the server is running, and its host and port in the URL.';
  }
  if (has('ENOTFOUND', 'EAI_AGAIN')) return 'The host name does not resolve: check the host in the URL.';
  if (has('ETIMEDOUT') || /timeout/i.test(describeError(error))) {
    return 'No answer in time: check the host and port, and that no firewall drops the connection.';
  }
  if (has('28P01', '28000')) {
    return "The server refused the login: check the user and password in the URL, and the server's pg_hba.conf.";
  }
  if (has('3D000')) {
    const name = URL.canParse(url) ? decodeURIComponent(new URL(url).pathname.slice(1)) : 'NAME';
    return `That database does not exist: create it (createdb ${name}), or fix its name in the URL.`;
  }
  if (has('ERR_INVALID_URL')) return 'The URL is malformed: postgres://user:password@host:5432/database';
  return 'Check the URL: postgres://user:password@host:5432/database';
}

function errorCodes(error: unknown): string[] {
  if (error instanceof AggregateError) return error.errors.flatMap(errorCodes);
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? [code] : [];
}

/** The URL with its password masked (also in `?password=`), so it can be printed. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/^(password|sslpassword|sslkey)$/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.href.replaceAll('%2A%2A%2A', '***');
  } catch {
    return url
      .replace(/\/\/([^:/@\s]*):[^@\s]*@/g, '//$1:***@')
      .replace(/password=[^&\s]*/gi, 'password=***');
  }
}

/** One line per cause: codes first, AggregateErrors (Node's happy eyeballs) unfolded, causes followed. */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return [...new Set(error.errors.map(describeError))].join('; ');
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const text =
      typeof code === 'string' && !error.message.includes(code)
        ? `${code}: ${error.message}`
        : error.message || error.name;
    return error.cause === undefined ? text : `${text} (${describeError(error.cause)})`;
  }
  return String(error);
}
