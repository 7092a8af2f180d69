import { type FastifyInstanceLike, installHooks, type TxScopePluginOptions } from './fastify-hooks.js';
import { checkMiddleware, invalid } from './scope.js';

/** The Fastify plugin. */
export type TxScopePlugin = (
  instance: FastifyInstanceLike,
  options: TxScopePluginOptions,
  done: (error?: Error) => void,
) => void;

function txscope(
  instance: FastifyInstanceLike,
  options: TxScopePluginOptions,
  done: (error?: Error) => void,
): void {
  if (options === null || typeof options !== 'object') {
    throw invalid('txscope/fastify plugin: options', '{ db, serverTiming? }', options);
  }
  const { db, ...rest } = options;
  checkMiddleware(db, rest, { where: 'txscope/fastify plugin' });
  installHooks(instance, options);
  done();
}

/**
 * A Fastify plugin that runs each request in a scope of `db`, from its
 * `onRequest` hook until the response has finished or the client has gone, across body
 * parsing and every hook. Its hooks apply to the whole application (it is not
 * encapsulated); register it before your routes. A client that disconnects aborts the
 * scope: its open transaction rolls back and frees its connection.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { plugin as txscope } from 'txscope/fastify';
 *
 * const app = Fastify();
 * await app.register(txscope, { db, serverTiming: true });
 * app.post('/users', async (request) => users.signUp(request.body as SignUp));
 * ```
 */
export const plugin: TxScopePlugin = Object.assign(txscope, {
  // What fastify-plugin sets: hooks apply to the parent (the whole app), not a child context.
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'txscope',
  [Symbol.for('plugin-meta')]: { name: 'txscope', fastify: '>=4' },
});
