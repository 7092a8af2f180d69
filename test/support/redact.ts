/**
 * Connection URLs end up in console output, CI logs and error messages, so every message that
 * names a database goes through this first.
 */

const MASK = '***';

// Both libpq (`?password=`, `?sslpassword=`) and mysql2 accept secrets as query parameters too.
const SECRET_PARAM = /^(password|pass|pwd|sslpassword|sslkey)$/i;

/** The URL with its password (userinfo and query parameters) masked; user, host, port and db kept. */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return redactUnparseable(url);
  }
  if (parsed.password !== '') parsed.password = MASK;
  for (const key of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAM.test(key)) parsed.searchParams.set(key, MASK);
  }
  // URLSearchParams percent-encodes the mask; keep the output readable.
  return parsed.href.replaceAll(encodeURIComponent(MASK), MASK);
}

// Not a WHATWG URL (a libpq `key=value` string, a typo): mask anything that looks like a secret
// rather than echo the input back.
function redactUnparseable(text: string): string {
  return text
    .replace(/\/\/([^:/@\s]*):[^@\s]*@/g, `//$1:${MASK}@`)
    .replace(/\b(password|pass|pwd|sslpassword)=('[^']*'|[^&\s]*)/gi, `$1=${MASK}`);
}
