import type { Dialect } from './driver.js';
import { errors } from './errors.js';

type Part = string | SqlParam | SqlIdentifier | SqlFragment;

class SqlParam {
  constructor(readonly value: unknown) {}
}

class SqlIdentifier {
  constructor(readonly name: string) {}
}

/**
 * A piece of SQL built by the `sql` tag: text and bound values, kept apart until
 * the driver's dialect turns it into placeholders.
 */
export class SqlFragment {
  /** @internal */
  readonly parts: readonly Part[];

  /** @internal */
  constructor(parts: readonly Part[]) {
    this.parts = parts;
  }
}

/** A statement ready for a driver: text with the dialect's placeholders, and its values. */
export interface CompiledStatement {
  text: string;
  values: unknown[];
}

function toPart(value: unknown): Part {
  return value instanceof SqlFragment || value instanceof SqlIdentifier ? value : new SqlParam(value);
}

interface SqlTag {
  /**
   * Builds a statement: every `${value}` becomes a bound parameter, never text.
   *
   * @example
   * ```ts
   * await db.query(sql`select * from users where id = ${id}`);
   * ```
   */
  (strings: TemplateStringsArray, ...values: unknown[]): SqlFragment;
  /**
   * A quoted identifier (table or column name) in the dialect's quoting.
   *
   * @example
   * ```ts
   * sql`select * from ${sql.id(table)}`
   * ```
   */
  id(name: string): SqlFragment;
  /**
   * Joins items with a separator (default `', '`): values are bound, fragments are spliced in.
   * The separator becomes statement text, so it is an `sql` fragment, or a string made only of
   * commas, whitespace and the keywords `and`/`or`; any other string is `ERR_INVALID_OPTION`.
   *
   * @example
   * ```ts
   * sql`select * from users where id in (${sql.join(ids)})`
   * sql`select * from users where ${sql.join([sql`active`, sql`age > ${18}`], ' and ')}`
   * ```
   */
  join(items: readonly unknown[], separator?: string | SqlFragment): SqlFragment;
}

function tag(strings: TemplateStringsArray, ...values: unknown[]): SqlFragment {
  const parts: Part[] = [];
  for (let i = 0; i < strings.length; i++) {
    const text = strings[i];
    if (text) parts.push(text);
    if (i < values.length) parts.push(toPart(values[i]));
  }
  return new SqlFragment(parts);
}

/** Commas, whitespace and the keywords `and`/`or`: the only strings a separator may be. */
const safeSeparator = /^(?:[\s,]|and|or)*$/i;

function separatorPart(separator: unknown): string | SqlFragment {
  if (separator instanceof SqlFragment) return separator;
  if (typeof separator === 'string' && safeSeparator.test(separator)) return separator;
  throw errors.invalidOption(
    'sql.join separator',
    "an sql`` fragment, or a string of commas, whitespace and and/or (such as ', ' or ' and ')",
    separator,
  );
}

/** The `sql` tagged template. See {@link SqlTag}. */
export const sql: SqlTag = Object.assign(tag, {
  id(name: string): SqlFragment {
    if (typeof name !== 'string' || name.length === 0) {
      throw errors.invalidOption('sql.id name', 'a non-empty string', name);
    }
    return new SqlFragment([new SqlIdentifier(name)]);
  },
  join(items: readonly unknown[], separator: string | SqlFragment = ', '): SqlFragment {
    if (!Array.isArray(items)) throw errors.invalidOption('sql.join items', 'an array', items);
    const glue = separatorPart(separator);
    const parts: Part[] = [];
    items.forEach((item, i) => {
      if (i > 0 && glue !== '') parts.push(glue);
      parts.push(toPart(item));
    });
    return new SqlFragment(parts);
  },
});

/** Turns a fragment into dialect text with numbered placeholders. */
export function compile(fragment: SqlFragment, dialect: Dialect): CompiledStatement {
  const values: unknown[] = [];
  let text = '';
  const walk = (parts: readonly Part[]): void => {
    for (const part of parts) {
      if (typeof part === 'string') text += part;
      else if (part instanceof SqlParam) {
        values.push(part.value);
        text += dialect.placeholder(values.length);
      } else if (part instanceof SqlIdentifier) text += dialect.quoteIdentifier(part.name);
      else walk(part.parts);
    }
  };
  walk(fragment.parts);
  return { text, values };
}
