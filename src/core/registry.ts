/** The default database: the one `@Transactional()` enters, looked up when the method is called. */
import { errors } from '../errors.js';
import type { Boundary } from './decorator.js';

let current: Boundary | null = null;

/** The first database created is the default until one created with `default: true` claims it. */
export function claimDefault(boundary: Boundary, explicit: boolean): void {
  if (explicit || current === null) current = boundary;
}

export function releaseDefault(boundary: Boundary): void {
  if (current === boundary) current = null;
}

/** The boundary of the default database, at call time. */
export function defaultBoundary(): Boundary {
  if (current === null) throw errors.noDefaultDatabase();
  return current;
}
