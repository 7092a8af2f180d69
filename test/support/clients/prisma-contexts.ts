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
 * tick belongs to its own context; one of another context waits until that tick has dispatched.
 * The release runs from a nextTick queued before Prisma's, in the same drain and with no microtask
 * between them, so nothing of another context can slip into the batch.
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
let waiting: { context: unknown; resume: () => void }[] = [];

function release(): void {
  owner = free;
  const resumed = waiting;
  waiting = [];
  // After the dispatch that just ran: each waiter asks again, and the first one's context owns the next tick.
  if (resumed.length > 0)
    setImmediate(() => {
      for (const w of resumed) w.resume();
    });
}

async function admitted(): Promise<void> {
  const context = storage.getStore();
  while (owner !== free && owner !== context) {
    await new Promise<void>((resume) => waiting.push({ context, resume }));
  }
  if (owner === free) {
    owner = context;
    process.nextTick(release);
  }
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
