/**
 * TypeORM for the shared integration scenarios, with entities written with decorators
 * (test/fixtures/typeorm/entities.ts): tsc compiles them with experimentalDecorators and
 * emitDecoratorMetadata, as TypeORM projects are built, since vitest's transformer cannot.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { Database } from 'txscope';
import { createDataSource } from 'txscope/typeorm';
import type { DataSource, EntityManager, MigrationInterface, Repository } from 'typeorm';
import type { ClientCase, Repos } from './index.js';

export interface UserEntity {
  id: number;
  name: string;
  orders: OrderEntity[];
}
export interface OrderEntity {
  id: number;
  user: UserEntity;
  total: number;
}
export interface AuditEntity {
  id: number;
  event: string;
}
type MethodDecorator = (target: object, key: string | symbol, descriptor: PropertyDescriptor) => void;

export interface OrderService {
  placeOrder(name: string, totals: number[]): Promise<UserEntity>;
  placeAndFail(name: string): Promise<never>;
  tryAudit(event: string, fail: boolean): Promise<void>;
  placeWithOptionalAudit(name: string): Promise<void>;
}

/** What test/fixtures/typeorm/entities.ts exports (its types stay out of the main typecheck). */
export interface TypeormFixture {
  User: new () => UserEntity;
  Order: new () => OrderEntity;
  Audit: new () => AuditEntity;
  CreateNotes1700000000000: new () => MigrationInterface;
  BrokenMigration1700000000001: new () => MigrationInterface;
  defineOrderService(
    Transactional: (options?: Record<string, unknown>) => MethodDecorator,
    repos: Repositories,
  ): OrderService;
}

export interface Repositories {
  users: Repository<UserEntity>;
  orders: Repository<OrderEntity>;
  audit: Repository<AuditEntity>;
}

const root = fileURLToPath(new URL('../../..', import.meta.url));
let compiled: Promise<TypeormFixture> | undefined;

/**
 * Compiles the fixture once per test file (incremental) and imports it. Each vitest worker has an
 * output folder of its own: test files running at once never read each other's half-written output.
 */
export function typeormFixture(): Promise<TypeormFixture> {
  compiled ??= (async () => {
    const out = `test/fixtures/typeorm/out/worker-${process.env.VITEST_POOL_ID ?? '0'}`;
    const args = ['-p', 'test/fixtures/typeorm', '--outDir', out, '--tsBuildInfoFile', `${out}/.tsbuildinfo`];
    try {
      await promisify(execFile)(`${root}node_modules/.bin/tsc`, args, { cwd: root });
    } catch (error) {
      const { stdout = '' } = error as { stdout?: string };
      throw new Error(`tsc -p test/fixtures/typeorm failed:\n${stdout}`, { cause: error });
    }
    const url = pathToFileURL(`${root}${out}/test/fixtures/typeorm/entities.js`);
    return (await import(url.href)) as TypeormFixture;
  })();
  return compiled;
}

/** The entities' data source over `db`: the schema is the suite's own (createSchema), not synchronized. */
export async function entityDataSource(
  db: Database,
  options: { subscribers?: (new () => unknown)[] } = {},
): Promise<{ dataSource: DataSource; fixture: TypeormFixture; repos: Repositories }> {
  const fixture = await typeormFixture();
  const dataSource = createDataSource(db, {
    type: db.dialect.name === 'mysql' ? 'mariadb' : undefined,
    entities: [fixture.User, fixture.Order, fixture.Audit],
    subscribers: options.subscribers ?? [],
  });
  await dataSource.initialize();
  return { dataSource, fixture, repos: repositoriesOf(dataSource.manager, fixture) };
}

export function repositoriesOf(manager: EntityManager, fixture: TypeormFixture): Repositories {
  return {
    users: manager.getRepository(fixture.User),
    orders: manager.getRepository(fixture.Order),
    audit: manager.getRepository(fixture.Audit),
  };
}

function repositories(ready: Promise<Repositories>): Repos {
  return {
    async createUser(name) {
      const { users } = await ready;
      return (await users.save(users.create({ name }))).id;
    },
    async addOrder(userId, total) {
      const { orders } = await ready;
      await orders.save(orders.create({ user: { id: userId } as UserEntity, total }));
    },
    async audit(event) {
      const { audit } = await ready;
      await audit.save(audit.create({ event }));
    },
    async userNames() {
      const { users } = await ready;
      return (await users.find({ order: { id: 'ASC' } })).map((u) => u.name);
    },
  };
}

export const typeormCase: ClientCase = {
  name: 'typeorm',
  callbackJoins: true,
  // save() outside a transaction is a transaction of its own, as TypeORM does it.
  wrapsWrites: () => true,
  create(db) {
    const made = entityDataSource(db);
    const ready = made.then((m) => m.repos);
    return {
      repos: repositories(ready),
      async ownTransaction(fn) {
        const { dataSource, fixture } = await made;
        return dataSource.transaction((manager) =>
          fn(repositories(Promise.resolve(repositoriesOf(manager, fixture)))),
        );
      },
      close: async () => {
        const { dataSource } = await made;
        if (dataSource.isInitialized) await dataSource.destroy();
      },
    };
  },
};
