import { errors } from '../errors.js';
import { checkTransactionOptions, type TransactionOptions } from '../options.js';
import { defaultBoundary } from './registry.js';

// biome-ignore lint/suspicious/noExplicitAny: `this` of a decorated method is whatever its class is.
type AsyncFunction = (this: any, ...args: never[]) => Promise<unknown>;

/**
 * What `db.transactional(options)` and `Transactional(options)` return: a method
 * decorator under TC39 decorators and `experimentalDecorators` alike, or a wrapper
 * for a plain async function.
 */
export interface TransactionalDecorator {
  /** Wraps an async function: each call runs under the boundary. */
  <F extends AsyncFunction>(fn: F): F;
  /** TC39 standard method decorator. */
  <F extends AsyncFunction>(method: F, context: ClassMethodDecoratorContext): F;
  /** `experimentalDecorators` method decorator (NestJS). */
  <F extends AsyncFunction>(
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<F>,
  ): TypedPropertyDescriptor<F> | undefined;
}

/** Enters a database's transaction boundary with options already checked. */
export type Boundary = <T>(fn: () => T | Promise<T>, options: Readonly<TransactionOptions>) => Promise<T>;

interface ReflectMetadata {
  getMetadataKeys?(target: object): unknown[];
  getMetadata?(key: unknown, target: object): unknown;
  defineMetadata?(key: unknown, value: unknown, target: object): void;
}

function wrap(
  method: AsyncFunction,
  name: string,
  database: () => Boundary,
  options: Readonly<TransactionOptions>,
) {
  const wrapped = {
    [name](this: unknown, ...args: never[]): Promise<unknown> {
      return database()(() => method.apply(this, args), options);
    },
  }[name] as AsyncFunction;
  // Frameworks (NestJS) keep route and guard metadata on the method itself: carry it over.
  const reflect = (globalThis as { Reflect?: ReflectMetadata }).Reflect;
  if (reflect?.getMetadataKeys && reflect.getMetadata && reflect.defineMetadata) {
    for (const key of reflect.getMetadataKeys(method)) {
      reflect.defineMetadata(key, reflect.getMetadata(key, method), wrapped);
    }
  }
  return wrapped;
}

/** Builds the decorator; `database` is called at each method call, not at decoration. */
export function transactionalDecorator(
  database: () => Boundary,
  options: Readonly<TransactionOptions>,
): TransactionalDecorator {
  function decorate(target: unknown, context?: unknown, descriptor?: PropertyDescriptor): unknown {
    if (descriptor !== undefined && (typeof context === 'string' || typeof context === 'symbol')) {
      if (typeof descriptor.value !== 'function')
        throw errors.notAMethod(`the accessor or field ${String(context)}`);
      descriptor.value = wrap(descriptor.value as AsyncFunction, String(context), database, options);
      return descriptor;
    }
    if (context !== null && typeof context === 'object' && 'kind' in context) {
      const c = context as ClassMethodDecoratorContext;
      if (c.kind !== 'method' || typeof target !== 'function')
        throw errors.notAMethod(`a class ${String(c.kind)}`);
      return wrap(target as AsyncFunction, String(c.name), database, options);
    }
    if (typeof target === 'function' && context === undefined) {
      return wrap(target as AsyncFunction, target.name || 'transactional', database, options);
    }
    throw errors.notAMethod(typeof target);
  }
  return decorate as TransactionalDecorator;
}

/**
 * Marks a method (or wraps a function) as a transaction boundary on the default
 * database, looked up when the method is called.
 *
 * @example
 * ```ts
 * class UserService {
 *   @Transactional()
 *   async signUp(input: SignUp) {
 *     const user = await users.insert(input);   // same connection,
 *     await profiles.insert(user.id, input);    // same transaction
 *     return user;
 *   }
 * }
 * ```
 */
export function Transactional(options?: TransactionOptions): TransactionalDecorator {
  const o = checkTransactionOptions(options, '@Transactional');
  return transactionalDecorator(defaultBoundary, o);
}
