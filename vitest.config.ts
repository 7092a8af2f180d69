import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const src = fileURLToPath(new URL('./src/', import.meta.url));

export default defineConfig({
  // Tests import txscope the way users do (`txscope`, `txscope/pg`), from the sources: the same
  // mapping as tsconfig.json's `paths`, and as the `exports` of package.json after a build.
  resolve: {
    alias: [
      { find: /^txscope$/, replacement: `${src}index.ts` },
      { find: /^txscope\/(.+)$/, replacement: `${src}exports/$1.ts` },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, 'test/fixtures/**/out/**'],
    // The Prisma clients first: when they cannot be generated, no database server has been started yet.
    globalSetup: ['test/setup/prisma-clients.ts', 'test/setup/global-setup.ts'],
    // Real database round trips, pool timeouts and retries with backoff take longer than unit tests.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 60_000,
    // Child processes rather than threads: native drivers (better-sqlite3) and AsyncLocalStorage
    // state stay per file, and a crashing driver takes down one file, not the run.
    pool: 'forks',
    isolate: true,
    fileParallelism: true,
  },
});
