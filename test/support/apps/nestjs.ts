import { execFile } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { type Database, Transactional } from 'txscope';
import { TxScopeModule } from 'txscope/nestjs';
import type { createNestApp as CreateNestApp } from '../../fixtures/nestjs/app.js';
import { running } from './listen.js';
import { type RunningApp, routes, work } from './service.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
let compiled: Promise<typeof CreateNestApp> | undefined;

/**
 * The NestJS major version the fixtures run on: 12 from the root's node_modules, or 11 under
 * vitest.nestjs11.config.ts, which resolves `@nestjs/*` to test/fixtures/nestjs11.
 */
export const nestMajor: 11 | 12 = process.env.TXSCOPE_NESTJS_MAJOR === '11' ? 11 : 12;
const fixtureProject = nestMajor === 11 ? 'test/fixtures/nestjs11' : 'test/fixtures/nestjs';

/**
 * Vitest's transformer cannot compile legacy decorators: tsc compiles the fixture (once per
 * test file) with experimentalDecorators and emitDecoratorMetadata, as Nest apps are built,
 * against the types of the NestJS version under test. A type error there fails here, with tsc's output.
 */
export function compileNestFixture(): Promise<typeof CreateNestApp> {
  compiled ??= (async () => {
    try {
      await promisify(execFile)(`${root}node_modules/.bin/tsc`, ['-p', fixtureProject], { cwd: root });
    } catch (error) {
      const { stdout = '' } = error as { stdout?: string };
      throw new Error(`tsc -p ${fixtureProject} failed:\n${stdout}`, { cause: error });
    }
    const url = pathToFileURL(`${root}${fixtureProject}/out/test/fixtures/nestjs/app.js`);
    return ((await import(url.href)) as { createNestApp: typeof CreateNestApp }).createNestApp;
  })();
  return compiled;
}

export async function startNest(db: Database, platform: 'express' | 'fastify'): Promise<RunningApp> {
  const createNestApp = await compileNestFixture();
  const app = await createNestApp({
    create: (module) =>
      NestFactory.create(module, platform === 'express' ? new ExpressAdapter() : new FastifyAdapter(), {
        logger: false,
      }),
    db,
    Transactional,
    TxScopeModule,
    work,
    routes,
  });
  return running(app.getHttpServer(), () => app.close());
}
