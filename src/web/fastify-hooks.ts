import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Database } from '../core/database.js';
import { reenter, requestScope, type ScopeMiddlewareOptions } from './scope.js';

/** The part of a Fastify request the plugin uses. */
export interface FastifyRequestLike {
  raw: IncomingMessage;
}

/** The part of a Fastify reply the plugin uses. */
export interface FastifyReplyLike {
  raw: ServerResponse;
}

type HookDone = (error?: Error) => void;

/** A callback-style request hook. */
export type RequestHook = (request: FastifyRequestLike, reply: FastifyReplyLike, done: HookDone) => void;

/** The part of a Fastify instance the plugin uses. */
export interface FastifyInstanceLike {
  addHook(name: 'onRequest' | 'preValidation' | 'preHandler', hook: RequestHook): unknown;
}

/** Options of the plugin: `fastify.register(plugin, { db })`. */
export interface TxScopePluginOptions extends ScopeMiddlewareOptions {
  db: Database;
}

/**
 * Adds the hooks to `instance` directly (the NestJS adapter uses it on Nest's Fastify
 * instance). Registered with `skip-override`, the plugin does the same on the root.
 */
export function installHooks(instance: FastifyInstanceLike, options: TxScopePluginOptions): void {
  const { db, serverTiming, readYourWrites } = options;
  const timing = {
    serverTiming: serverTiming === true,
    ...(readYourWrites === undefined ? {} : { readYourWrites }),
  };
  instance.addHook('onRequest', (request, reply, done) => {
    let passed = false;
    requestScope(db, { req: request.raw, res: reply.raw, options: timing }, () => {
      passed = true;
      done();
    }).catch((error: unknown) => {
      // Only a scope that could not start (a closed database) lands here, with a TxScopeError.
      if (!passed) done(error as Error);
    });
  });
  // Body parsing runs between onRequest and preValidation, driven by the request's
  // events; whatever context it resumed in, the rest of the request runs in the scope.
  const resume: RequestHook = (request, _reply, done) => reenter(request.raw, done);
  instance.addHook('preValidation', resume);
  instance.addHook('preHandler', resume);
}
