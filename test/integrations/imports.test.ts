/**
 * The core knows nothing of any driver, framework or query builder: importing `txscope` loads
 * none of them, and the integrations are optional peers. Checked on the import graph of
 * src/index.ts (static and dynamic imports alike).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(
  readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../../package.json'), 'utf8'),
) as {
  exports: Record<string, unknown>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean } | undefined>;
};
const optional = /^(kysely|drizzle-orm|@prisma\/|prisma|typeorm|knex|@opentelemetry\/)(\/|$)/;

function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    // Comments hold examples (`import { pg } from 'txscope/pg'` in TSDoc): only code counts.
    const source = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    for (const match of source.matchAll(
      /(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g,
    )) {
      const specifier = match[1] ?? match[2];
      if (specifier === undefined) continue;
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier).replace(/\.js$/, '.ts'));
      else packages.add(specifier);
    }
  };
  visit(entry);
  return { files, packages };
}

it('the core imports no driver, framework or query builder, and no package but node builtins', () => {
  const { files, packages } = importGraph(resolve(root, 'src/index.ts'));
  const relative = [...files].map((f) => f.slice(root.length + 1));
  // The databases' error tables (drivers/*/classify.ts) are pure data that isRetryable shares.
  expect(relative.filter((f) => /^src\/(integrations|web|exports)\//.test(f))).toEqual([]);
  expect(relative.filter((f) => f.startsWith('src/drivers/') && !f.endsWith('/classify.ts'))).toEqual([]);
  expect([...packages].filter((p) => !p.startsWith('node:'))).toEqual([]);
  expect([...packages].filter((p) => optional.test(p))).toEqual([]);
});

it('each integration library is an optional peer dependency', () => {
  for (const name of ['kysely', 'drizzle-orm', '@prisma/client', 'typeorm', 'knex', '@opentelemetry/api']) {
    expect(pkg.peerDependencies).toHaveProperty([name]);
    expect(pkg.peerDependenciesMeta[name]?.optional).toBe(true);
  }
  for (const subpath of ['./kysely', './drizzle', './prisma', './typeorm', './knex', './otel'])
    expect(pkg.exports).toHaveProperty([subpath]);
});

it('txscope/otel imports @opentelemetry/api alone (no SDK), and only it does', () => {
  const { packages } = importGraph(resolve(root, 'src/exports/otel.ts'));
  expect([...packages].filter((p) => !p.startsWith('node:'))).toEqual(['@opentelemetry/api']);
});
