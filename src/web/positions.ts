/**
 * Read-your-writes across requests (rule 20, the `readYourWrites` middleware option): a request
 * that committed a write hands the primary's position after it to the client (a cookie, or a
 * response header), and the client's next request hands it back, to whichever process serves it:
 * that request's read-only transactions then use only a replica that has replayed the write.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { adoptPosition, positionOfScope } from '../core/positions.js';
import { errors } from '../errors.js';

/** Where the position travels: a cookie (browsers send it back by themselves) and/or a header. */
export interface ReadYourWritesOptions {
  /** Cookie name; default `txscope-position` when `header` is not given either. `false`: no cookie. */
  cookie?: string | false;
  /** Header name: read on requests, set on responses (the client echoes it). Default: none. */
  header?: string | false;
  /** How long the cookie lives; default 10 s, enough for any replica within `maxReplicaLagMs`. */
  maxAgeSeconds?: number;
}

/** The options once checked. */
interface Carrier {
  readonly cookie: string | null;
  readonly header: string | null;
  readonly maxAgeSeconds: number;
}

const defaultCookie = 'txscope-position';
const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const carriers = new WeakMap<object, Carrier>();

/** Checks the option (`true` or {@link ReadYourWritesOptions}); throws `ERR_INVALID_OPTION`-style errors. */
export function checkReadYourWrites(where: string, value: unknown): void {
  if (value === undefined || value === false || value === true) return;
  if (value === null || typeof value !== 'object') {
    throw errors.invalidValue(
      `${where}: readYourWrites`,
      'true, or { cookie?, header?, maxAgeSeconds? }',
      value,
    );
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!['cookie', 'header', 'maxAgeSeconds'].includes(key)) {
      throw errors.invalidValue(`${where}: readYourWrites.${key}`, 'cookie, header, maxAgeSeconds', key);
    }
  }
  for (const key of ['cookie', 'header'] as const) {
    const name = o[key];
    if (name !== undefined && name !== false && !(typeof name === 'string' && token.test(name))) {
      throw errors.invalidValue(`${where}: readYourWrites.${key}`, 'a cookie or header name, or false', name);
    }
  }
  const age = o.maxAgeSeconds;
  if (age !== undefined && !(typeof age === 'number' && Number.isInteger(age) && age > 0)) {
    throw errors.invalidValue(`${where}: readYourWrites.maxAgeSeconds`, 'a whole number of seconds > 0', age);
  }
}

function carrierOf(option: true | ReadYourWritesOptions): Carrier {
  if (option === true) return { cookie: defaultCookie, header: null, maxAgeSeconds: 10 };
  let carrier = carriers.get(option);
  if (carrier === undefined) {
    const header = typeof option.header === 'string' ? option.header.toLowerCase() : null;
    const cookie =
      typeof option.cookie === 'string'
        ? option.cookie
        : option.cookie === false || header !== null
          ? null
          : defaultCookie;
    carrier = { cookie, header, maxAgeSeconds: option.maxAgeSeconds ?? 10 };
    carriers.set(option, carrier);
  }
  return carrier;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** The part of a response this needs. */
interface PositionResponse {
  headersSent: boolean;
  writeHead: (...args: never[]) => unknown;
  getHeader(name: string): number | string | string[] | undefined;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
}

/**
 * Reads the position the client handed back into `scope`, and writes the scope's position on the
 * response just before its headers go out when this request changed it (it wrote).
 */
export function carryPosition(
  req: object,
  res: PositionResponse,
  scope: object,
  option: true | ReadYourWritesOptions,
): void {
  const carrier = carrierOf(option);
  const headers = (req as { headers?: IncomingHttpHeaders }).headers ?? {};
  let incoming: string | undefined;
  if (carrier.header !== null) {
    const value = headers[carrier.header];
    incoming = Array.isArray(value) ? value[0] : value;
  }
  if (incoming === undefined && carrier.cookie !== null)
    incoming = cookieValue(headers.cookie, carrier.cookie);
  if (incoming !== undefined) adoptPosition(scope, incoming);
  const before = positionOfScope(scope);
  const writeHead = res.writeHead as (...args: unknown[]) => unknown;
  res.writeHead = function writeHeadWithPosition(this: PositionResponse, ...args: unknown[]) {
    const position = positionOfScope(scope);
    if (!this.headersSent && position !== null && position !== before) {
      if (carrier.header !== null) this.setHeader(carrier.header, position);
      if (carrier.cookie !== null) {
        const cookie = `${carrier.cookie}=${encodeURIComponent(position)}; Max-Age=${carrier.maxAgeSeconds}; Path=/; HttpOnly; SameSite=Lax`;
        const existing = this.getHeader('Set-Cookie');
        const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
        this.setHeader('Set-Cookie', [...list, cookie]);
      }
    }
    return writeHead.apply(this, args);
  } as PositionResponse['writeHead'];
}
