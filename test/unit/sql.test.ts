/** The `sql` tag: what a statement compiles to, per dialect, and what it refuses. */

import { compile, type Dialect, sql, TxScopeError } from 'txscope';
import { mysqlDialect } from 'txscope/mysql';
import { sqliteDialect } from 'txscope/sqlite';
import { describe, expect, it } from 'vitest';
import { postgresDialect } from '../../src/drivers/postgres/dialect.js';

const dialects: [string, Dialect][] = [
  ['postgres', postgresDialect],
  ['mysql', mysqlDialect],
  ['sqlite', sqliteDialect],
];

function refused(make: () => unknown): TxScopeError {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(TxScopeError);
    return error as TxScopeError;
  }
  throw new Error('expected a TxScopeError');
}

describe('sql compile', () => {
  it('values become bound parameters in the dialect placeholders, never text', () => {
    const email = "x'); drop table users; --";
    expect(compile(sql`select * from users where email = ${email} and id > ${3}`, postgresDialect)).toEqual({
      text: 'select * from users where email = $1 and id > $2',
      values: [email, 3],
    });
    expect(compile(sql`select ${1}, ${2}`, mysqlDialect)).toEqual({ text: 'select ?, ?', values: [1, 2] });
    expect(compile(sql`select ${1}, ${2}`, sqliteDialect)).toEqual({ text: 'select ?, ?', values: [1, 2] });
  });

  it('nested fragments keep their values, numbered in order', () => {
    const where = sql`tag = ${'a'} and n = ${2}`;
    expect(compile(sql`select ${0} from items where ${where} limit ${10}`, postgresDialect)).toEqual({
      text: 'select $1 from items where tag = $2 and n = $3 limit $4',
      values: [0, 'a', 2, 10],
    });
  });

  it.each(dialects)('sql.id quotes identifiers in the %s dialect, quotes inside doubled', (_, dialect) => {
    const { text } = compile(sql`select * from ${sql.id('we"ird`name')}`, dialect);
    expect(text).toBe(`select * from ${dialect.quoteIdentifier('we"ird`name')}`);
    if (dialect.name === 'mysql') expect(text).toBe('select * from `we"ird``name`');
    else expect(text).toBe('select * from "we""ird`name"');
  });

  it('sql.id refuses an empty or non-string name with ERR_INVALID_OPTION', () => {
    expect(refused(() => sql.id('')).code).toBe('ERR_INVALID_OPTION');
    expect(refused(() => sql.id(42 as unknown as string)).code).toBe('ERR_INVALID_OPTION');
  });

  it('sql.join binds its items, fragments are spliced in, the default separator is a comma', () => {
    expect(compile(sql`where id in (${sql.join([1, 2, 3])})`, postgresDialect)).toEqual({
      text: 'where id in ($1, $2, $3)',
      values: [1, 2, 3],
    });
    const conditions = [sql`active`, sql`age > ${18}`, sql`name = ${'n'}`];
    expect(compile(sql`where ${sql.join(conditions, ' and ')}`, postgresDialect)).toEqual({
      text: 'where active and age > $1 and name = $2',
      values: [18, 'n'],
    });
    expect(compile(sql`${sql.join([1, 2], sql` || `)}`, postgresDialect).text).toBe('$1 || $2');
    expect(compile(sql`(${sql.join([1, 2], ' OR ')})`, mysqlDialect).text).toBe('(? OR ?)');
    expect(compile(sql`${sql.join([], ', ')}`, postgresDialect)).toEqual({ text: '', values: [] });
  });

  it('sql.join refuses a separator that would put anything else into the statement text', () => {
    for (const separator of ['); drop table t; --', "' or '1'='1", '--', ';', 'union select', '+']) {
      const error = refused(() => sql.join([1, 2], separator));
      expect(error.code).toBe('ERR_INVALID_OPTION');
      expect(error.message).toContain('sql.join separator');
    }
    expect(refused(() => sql.join('1,2' as unknown as unknown[])).code).toBe('ERR_INVALID_OPTION');
  });
});
