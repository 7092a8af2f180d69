import { HttpAdapterHost } from '@nestjs/core';
import type { Database } from '../core/database.js';
import { middleware } from './express.js';
import { type FastifyInstanceLike, installHooks } from './fastify-hooks.js';
import { checkMiddleware, invalid, type ScopeMiddlewareOptions } from './scope.js';

/** The injection token of the database given to `forRoot`: `@Inject(TXSCOPE_DATABASE) db: Database`. */
export const TXSCOPE_DATABASE: unique symbol = Symbol.for('txscope:database');

/** Options of `TxScopeModule.forRoot`. */
export interface TxScopeModuleOptions extends ScopeMiddlewareOptions {
  db: Database;
}

/** The part of Nest's HTTP adapter the module uses. */
interface HttpAdapterLike {
  getType(): string;
  getInstance(): unknown;
  use(...args: unknown[]): unknown;
}

type Token = abstract new (...args: never[]) => unknown;

/** What `forRoot` returns: a Nest `DynamicModule`, global. */
export interface TxScopeDynamicModule {
  module: typeof TxScopeModule;
  global: boolean;
  providers: (
    | { provide: symbol; useValue: Database }
    | {
        provide: symbol;
        useFactory: (host: { httpAdapter?: HttpAdapterLike | null }) => string;
        inject: Token[];
      }
  )[];
  exports: symbol[];
}

const installed = new WeakSet<object>();
const INSTALLER = Symbol.for('txscope:nestjs-installer');

/**
 * Opens the scope on Nest's own HTTP server, before Nest registers its body parsers,
 * middleware and routes: Nest creates providers (and so calls this) first.
 */
function install(adapter: HttpAdapterLike | null | undefined, options: TxScopeModuleOptions): string {
  // An application context without HTTP (a script, a worker) has nothing to install.
  if (adapter === undefined || adapter === null) return 'none';
  const type = adapter.getType();
  if (installed.has(adapter)) return type;
  const readYourWrites = options.readYourWrites;
  const timing = {
    serverTiming: options.serverTiming === true,
    ...(readYourWrites === undefined ? {} : { readYourWrites }),
  };
  if (type === 'express') {
    adapter.use(middleware(options.db, timing));
  } else if (type === 'fastify') {
    installHooks(adapter.getInstance() as FastifyInstanceLike, { db: options.db, ...timing });
  } else {
    throw invalid(
      'TxScopeModule',
      "used with Nest's Express or Fastify adapter; for another one, open the scope with db.scope() in your own middleware",
      type,
    );
  }
  installed.add(adapter);
  return type;
}

/**
 * The NestJS module (NestJS 11 and newer, on Express and on Fastify): each HTTP request
 * runs in a scope of `db`, opened before Nest's body parsing, middleware, guards and
 * handlers, and ended when the response has finished or the client has gone (which
 * aborts it, rolling back its open transaction). `@Transactional()` on providers' methods
 * works with Nest's dependency injection and its `experimentalDecorators`.
 *
 * @example
 * ```ts
 * @Module({ imports: [TxScopeModule.forRoot({ db, serverTiming: true })], providers: [UsersService] })
 * export class AppModule {}
 *
 * @Injectable()
 * export class UsersService {
 *   @Transactional()
 *   async signUp(input: SignUp) { ... }
 * }
 * ```
 */
// biome-ignore lint/complexity/noStaticOnlyClass: Nest modules are classes; forRoot is Nest's convention.
export class TxScopeModule {
  static forRoot(options: TxScopeModuleOptions): TxScopeDynamicModule {
    if (options === null || typeof options !== 'object') {
      throw invalid('TxScopeModule.forRoot: options', '{ db, serverTiming? }', options);
    }
    const { db, ...rest } = options;
    checkMiddleware(db, rest, { where: 'TxScopeModule.forRoot' });
    return {
      module: TxScopeModule,
      global: true,
      providers: [
        { provide: TXSCOPE_DATABASE, useValue: db },
        {
          provide: INSTALLER,
          useFactory: (host) => install(host.httpAdapter, options),
          inject: [HttpAdapterHost],
        },
      ],
      exports: [TXSCOPE_DATABASE],
    };
  }
}
