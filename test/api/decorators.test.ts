/**
 * `@Transactional()` and `@db.transactional()` compiled by tsc in both decorator
 * modes (TC39 standard, and experimentalDecorators as NestJS uses), then run
 * against a real database.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql, Transactional, TxScopeError } from 'txscope';
import { beforeAll, expect, it } from 'vitest';
import type { makeService as MakeService } from '../fixtures/decorators/service.js';
import { forEachDriver } from '../support/drivers.js';
import { itemsTable } from '../support/schema.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const modes = ['tc39', 'legacy'] as const;
const compiled = new Map<string, typeof MakeService>();

beforeAll(async () => {
  for (const mode of modes) {
    // A type error in either mode fails here, with tsc's output.
    execFileSync(`${root}node_modules/.bin/tsc`, ['-p', `test/fixtures/decorators/${mode}`], { cwd: root });
    const url = new URL(
      `../fixtures/decorators/${mode}/out/test/fixtures/decorators/service.js`,
      import.meta.url,
    );
    const module = (await import(url.href)) as { makeService: typeof MakeService };
    compiled.set(mode, module.makeService);
  }
}, 60_000);

forEachDriver('decorators', (env) => {
  for (const mode of modes) {
    it(`${mode}: a decorated method keeps this, joins one transaction, and rolls back on error`, async () => {
      const { db, probe } = env.createDb();
      await itemsTable(db);
      probe.reset();
      const Service = (compiled.get(mode) as typeof MakeService)(db, Transactional, sql);
      const service = new Service();
      const result = await service.signUp('a');
      expect(result).toEqual({ depth: 1, prefix: 'svc' });
      expect(probe.acquires).toBe(1);
      const rows = await env.observe<{ tag: string }>('select tag from items order by id');
      expect(rows.map((r) => r.tag)).toEqual(['svc:a', 'audit:a']);
      // mandatory outside a transaction is refused on entry
      await expect(service.audit('b')).rejects.toMatchObject({ code: 'ERR_NO_TRANSACTION' });
      await expect(service.failing('c')).rejects.toThrow('failing c');
      expect((await env.observe('select tag from items')).length).toBe(2);
      expect(Service.prototype.signUp.name).toBe('signUp');
    });
  }
});

it('decorating something that is not a method is refused at decoration time', () => {
  const decorate = Transactional() as unknown as (value: unknown, context: unknown) => unknown;
  expect(() => decorate(undefined, { kind: 'field', name: 'x' })).toThrow(TxScopeError);
  expect(() => Transactional({ propagation: 'sometimes' as 'required' })).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
  );
});
