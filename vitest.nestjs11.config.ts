/**
 * The NestJS fixtures once more, on NestJS 11 (`vitest run -c vitest.nestjs11.config.ts`, part of
 * `npm test`): every `@nestjs/*` import of the sources and tests resolves to
 * test/fixtures/nestjs11/node_modules, installed from that directory's lockfile when missing.
 * Nest's own packages, loaded by Node from there, find each other there too.
 */
import { defineConfig } from 'vitest/config';
import { ensureNest11, Nest11InstallError, nest11Dir } from './test/setup/nestjs11.mjs';
import base from './vitest.config.js';

async function installed(): Promise<boolean> {
  try {
    if (await ensureNest11()) process.stderr.write(`[txscope tests] installed NestJS 11 in ${nest11Dir}\n`);
    return true;
  } catch (error) {
    if (!(error instanceof Nest11InstallError) || process.env.CI === 'true') throw error;
    process.stderr.write(
      `\n[txscope tests] the NestJS 11 suite is SKIPPED: ${error.message}\n` +
        '  (CI=true fails here instead; install it with: node test/setup/nestjs11.mjs)\n\n',
    );
    return false;
  }
}

export default defineConfig(async () => {
  const ready = await installed();
  return {
    resolve: {
      alias: [
        ...((base.resolve?.alias ?? []) as { find: RegExp; replacement: string }[]),
        {
          find: /^@nestjs\/([a-z-]+)\/package\.json$/,
          replacement: `${nest11Dir}/node_modules/@nestjs/$1/package.json`,
        },
        { find: /^@nestjs\/([a-z-]+)$/, replacement: `${nest11Dir}/node_modules/@nestjs/$1/index.js` },
      ],
    },
    test: {
      ...base.test,
      name: 'nestjs11',
      include: ready ? ['test/web/scenarios.test.ts'] : [],
      passWithNoTests: !ready,
      env: { TXSCOPE_NESTJS_MAJOR: '11' },
      // No Prisma client is needed here; the database servers are.
      globalSetup: ['test/setup/global-setup.ts'],
    },
  };
});
