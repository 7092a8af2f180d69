/**
 * Read-your-writes floors (rule 20): the replication position a scope's later read-only
 * transactions must see, once it has committed a write. Kept beside the scopes, not in them, so
 * that databases without replicas carry nothing; a floor goes away with its scope.
 */

/**
 * `position`: the primary's position right after the scope's last commit. `unknown`: the scope
 * wrote where no position was taken (an autocommit statement, a failed position query): its reads
 * ask the primary for its current position first, which is at or past that write.
 */
export type Floor = { readonly kind: 'position'; readonly position: string } | { readonly kind: 'unknown' };

const floors = new WeakMap<object, Floor>();

export const unknownFloor: Floor = Object.freeze({ kind: 'unknown' });

/** The text a client hands back for an `unknown` floor. */
const unknownText = '*';

/** Positions from clients are short and plain; anything else is dropped unread. */
const positionText = /^[0-9A-Za-z/:,.-]{1,200}$/;

export function floorOf(session: object): Floor | undefined {
  return floors.get(session);
}

export function setFloor(session: object, floor: Floor): void {
  floors.set(session, floor);
}

/** The scope's floor as a client carries it (cookie or header), or null when it wrote nothing. */
export function positionOfScope(scope: object): string | null {
  const floor = floors.get(scope);
  if (floor === undefined) return null;
  return floor.kind === 'position' ? floor.position : unknownText;
}

/**
 * Takes the floor a client handed back (written by another request, maybe on another process).
 * A malformed value is ignored; a well-formed one the dialect cannot read counts as `unknown`
 * when used, so it can only send reads to the primary, never to a replica that lacks the write.
 */
export function adoptPosition(scope: object, text: string): void {
  if (floors.has(scope)) return;
  if (text === unknownText) floors.set(scope, unknownFloor);
  else if (positionText.test(text)) floors.set(scope, { kind: 'position', position: text });
}
