/**
 * What every framework's test app serves: repositories as module functions over a
 * module-level `db` (as an application has them), a service whose methods are
 * `@Transactional()` boundaries, and the routes' handlers. The test controls the
 * handlers that wait (gates) and reads what happened to work they left behind (outcomes).
 */
import { type Database, isTxScopeError, sql, Transactional } from 'txscope';

/** The application's database, set by each suite before its app starts. */
export let db: Database;

export function useDatabase(database: Database): void {
  db = database;
}

export const table = 'http_items';

/** What a request reads back inside its transaction. */
export interface Mine {
  /** Tags of this request's rows written by this very transaction (by xmin). */
  tags: string[];
  /** This request's rows that the transaction can see. */
  visible: number;
  /** The transaction's id: two requests sharing a transaction would share it. */
  txid: string;
}

export interface RequestBody {
  requestId: string;
}

// ---- repositories ----

export const items = {
  async insert(tag: string): Promise<void> {
    await db.query(sql`insert into http_items (tag) values (${tag})`);
  },
  async mine(requestId: string): Promise<Mine> {
    const { rows } = await db.query<{ tags: string[]; visible: number; txid: string }>(
      sql`select coalesce(array_agg(tag order by id) filter (where xmin::text::bigint = txid_current() % 4294967296),
                          '{}') as tags,
                 count(*)::int as visible,
                 txid_current()::text as txid
            from http_items
           where tag like ${`${requestId}:%`}`,
    );
    const row = rows[0];
    if (row === undefined) throw new Error('no row');
    return row;
  },
};

// ---- gates: handlers wait on them, the test opens them ----

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const reachedGates = new Map<string, Deferred>();
const openGates = new Map<string, Deferred>();

function entry(map: Map<string, Deferred>, key: string): Deferred {
  let d = map.get(key);
  if (d === undefined) {
    d = deferred();
    map.set(key, d);
  }
  return d;
}

export const gates = {
  /** Resolves once a handler waits at gate `key`. */
  reached: (key: string): Promise<void> => entry(reachedGates, key).promise,
  open: (key: string): void => entry(openGates, key).resolve(),
  async wait(key: string): Promise<void> {
    entry(reachedGates, key).resolve();
    await entry(openGates, key).promise;
  },
};

// ---- outcomes of work that outlives its response ----

const outcomeMap = new Map<string, Deferred & { value?: string }>();

export const outcomes = {
  record(key: string, value: string): void {
    const d = entry(outcomeMap, key) as Deferred & { value?: string };
    d.value = value;
    d.resolve();
  },
  /** 'ran', or the code (else the message) of the error it ended with. */
  async of(key: string): Promise<string> {
    const d = entry(outcomeMap, key) as Deferred & { value?: string };
    await d.promise;
    return d.value ?? '';
  },
};

function describeError(error: unknown): string {
  if (isTxScopeError(error)) return error.code;
  return error instanceof Error ? error.message : String(error);
}

// ---- the service ----

/** The service's work, undecorated: the NestJS app wraps it in its own `@Transactional()` methods. */
export const work = {
  /** Three repository calls: two writes and a read-back. */
  async place(requestId: string): Promise<Mine> {
    await items.insert(`${requestId}:a`);
    await items.insert(`${requestId}:b`);
    return items.mine(requestId);
  },
  async failAfterTwoWrites(requestId: string): Promise<never> {
    await items.insert(`${requestId}:a`);
    await items.insert(`${requestId}:b`);
    throw new Error(`failed after two writes (${requestId})`);
  },
  /** Writes, then waits at gate `requestId` mid-transaction. */
  async hang(requestId: string): Promise<Mine> {
    await items.insert(`${requestId}:a`);
    await gates.wait(requestId);
    try {
      await items.insert(`${requestId}:b`);
      outcomes.record(requestId, 'ran');
    } catch (error) {
      outcomes.record(requestId, describeError(error));
      throw error;
    }
    return items.mine(requestId);
  },
};

export const orders = {
  place: Transactional()(work.place),
  failAfterTwoWrites: Transactional()(work.failAfterTwoWrites),
  hang: Transactional()(work.hang),
};

/** The service the apps call; the NestJS app passes its own injected one. */
export type OrderService = typeof orders;

// ---- the routes' handlers, shared by every app ----

export function routes(service: OrderService) {
  return {
    /** GET /ping: no database. */
    ping: () => ({ inScope: db.current.inScope }),
    /** POST /orders */
    orders: (body: RequestBody) => service.place(body.requestId),
    /** POST /fail: throws after two writes. */
    fail: (body: RequestBody) => service.failAfterTwoWrites(body.requestId),
    /** POST /hang: waits mid-transaction until the test opens the gate. */
    hang: (body: RequestBody) => service.hang(body.requestId),
    /** POST /leak: leaves a promise behind that queries after the response, once its gate opens. */
    leak: (body: RequestBody) => {
      const key = `leak:${body.requestId}`;
      void (async () => {
        await gates.wait(key);
        await items.insert(`${body.requestId}:late`);
      })().then(
        () => outcomes.record(key, 'ran'),
        (error: unknown) => outcomes.record(key, describeError(error)),
      );
      return { left: true };
    },
  };
}

export type Routes = ReturnType<typeof routes>;

/** A started app: its base URL, and how to stop it. */
export interface RunningApp {
  url: string;
  close(): Promise<void>;
}

/** The options every app passes to its framework's txscope middleware. */
export const scopeOptions = { serverTiming: true } as const;
