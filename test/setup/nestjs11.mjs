// Installs NestJS 11 into test/fixtures/nestjs11/node_modules from that directory's own lockfile,
// for the second run of the NestJS fixtures (vitest.nestjs11.config.ts). Nest's packages import each
// other by name, so an npm alias in the root package.json cannot hold a second major version: they
// need a directory of their own. An install whose stamp matches the lockfile is reused.
//
// Plain JavaScript, like prisma-generate.mjs: `node test/setup/nestjs11.mjs` works on Node 20 too.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
export const nest11Dir = resolve(dirname(self), '../fixtures/nestjs11');
const stampFile = join(nest11Dir, 'node_modules/.txscope-stamp');
// About 15 s on a normal connection; a registry that does not answer must not hang the run.
const TIMEOUT_MS = 180_000;

export class Nest11InstallError extends Error {
  name = 'Nest11InstallError';
}

/** Resolves to whether it had to install (false: the existing install matches the lockfile). */
export async function ensureNest11() {
  const stamp = createHash('sha256')
    .update(await readFile(join(nest11Dir, 'package-lock.json')))
    .digest('hex');
  const existing = await readFile(stampFile, 'utf8').catch(() => '');
  if (existing === stamp) return false;
  await new Promise((done, failed) => {
    execFile(
      'npm',
      ['ci', '--no-audit', '--no-fund', '--loglevel=error'],
      { cwd: nest11Dir, timeout: TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) return done(undefined);
        const cause = error.killed ? `no answer within ${TIMEOUT_MS / 1000} s` : `${stderr}${stdout}`.trim();
        failed(new Nest11InstallError(`npm ci in ${nest11Dir} failed: ${cause || error.message}`));
      },
    );
  });
  await writeFile(stampFile, stamp);
  return true;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === self) {
  try {
    if (await ensureNest11()) process.stderr.write(`[txscope tests] installed NestJS 11 in ${nest11Dir}\n`);
  } catch (error) {
    if (!(error instanceof Nest11InstallError)) throw error;
    process.stderr.write(`\n${error.message}\n\n`);
    process.exitCode = 1;
  }
}
