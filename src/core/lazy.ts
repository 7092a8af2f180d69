/**
 * Lazy thenables: objects whose work starts when `then` is first called, not when they are made
 * (a Prisma query, a Knex builder). Returned from a context-setting callback, they would run
 * wherever they are awaited; bound here, they run in the context they were made in.
 */
import { type Binding, storage } from './context.js';

type Thenable = { then: (...args: unknown[]) => unknown };

const settlers = new Set<PropertyKey>(['then', 'catch', 'finally']);

function isLazyThenable(value: unknown): value is Thenable {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    !(value instanceof Promise) &&
    typeof (value as Partial<Thenable>).then === 'function'
  );
}

/**
 * `value` itself unless it is a lazy thenable; then the same object seen through a proxy whose
 * `then`, `catch` and `finally` run under `binding`. Everything else passes through unchanged
 * (Prisma's `$transaction([...])` reads other members of its queries).
 */
export function bindLazy<T>(binding: Binding, value: T): T {
  if (!isLazyThenable(value)) return value;
  return new Proxy(value, {
    get(target, key) {
      const member: unknown = Reflect.get(target, key, target);
      if (!settlers.has(key) || typeof member !== 'function') return member;
      return (...args: unknown[]) => storage.run(binding, () => Reflect.apply(member, target, args));
    },
  }) as T;
}
