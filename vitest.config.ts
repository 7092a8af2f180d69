import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
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
