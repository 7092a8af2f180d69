/**
 * PROPOSAL, not part of the package (see the report of issue 21): a Prisma client extension that
 * keeps Prisma's dataloader from merging requests of different async contexts. It needs the user
 * to write `new PrismaClient({ adapter: adapter(db) }).$extends(separateContexts)`, which
 * DESIGN.md's fixed setup does not allow; a driver adapter alone cannot do it, since Prisma never
 * tells the adapter who asked for a merged statement.
 *
 * Prisma's dataloader collects keyed requests (findUnique, findUniqueOrThrow, and every request of
 * a `$transaction`) until one `process.nextTick`, scheduled by the first of them, dispatches them
 * all in that first caller's async context. Here a keyed request enters only while the current
 * tick belongs to its own context; one of another context waits until that tick has dispatched,
 * then gets the next tick, in the same turn of the event loop. The release runs from a nextTick
 * queued before Prisma's, with no microtask between them, so nothing of another context can slip
 * into the batch.
 */
import { storage } from '../../../src/core/context.js';

type Params = {
  operation: string;
  args: unknown;
  query: (args: unknown) => Promise<unknown>;
  __internalParams?: { transaction?: { id?: unknown } };
};

const free = Symbol('free');
let owner: unknown = free;
let armed = false;
const waiting: { context: unknown; resume: () => void }[] = [];

/**
 * Called by every admitted request, in the microtask drain that takes it to the dataloader: the
 * release is queued before the nextTick of Prisma's dispatch, so it runs just before that dispatch,
 * with no microtask in between.
 */
function arm(): void {
  if (armed) return;
  armed = true;
  process.nextTick(release);
}

function release(): void {
  owner = free;
  armed = false;
  // Queued behind Prisma's dispatch: the next context's requests go into a tick of their own.
  if (waiting.length > 0) process.nextTick(handOff);
}

/** The next tick to the first waiting context, with all its waiters; the others keep their place. */
function handOff(): void {
  const first = waiting[0];
  if (owner !== free || first === undefined) return;
  owner = first.context;
  for (let i = 0; i < waiting.length; ) {
    const w = waiting[i] as (typeof waiting)[number];
    if (w.context === first.context) {
      waiting.splice(i, 1);
      w.resume();
    } else i++;
  }
}

async function admitted(): Promise<void> {
  const context = storage.getStore();
  if (owner === free && waiting.length === 0) owner = context;
  if (owner !== context) await new Promise<void>((resume) => waiting.push({ context, resume }));
  arm();
}

const keyed = (p: Params) =>
  p.operation === 'findUnique' ||
  p.operation === 'findUniqueOrThrow' ||
  p.__internalParams?.transaction?.id !== undefined;

// Top-level `$allOperations`: raw queries too, since a keyed request of any kind that comes first in
// a tick decides the context its whole dispatch runs in.
export const separateContexts = {
  name: 'txscope-separate-contexts',
  query: {
    async $allOperations(params: Params): Promise<unknown> {
      if (keyed(params)) await admitted();
      return params.query(params.args);
    },
  },
};
