/**
 * The integrations are optional peers: importing `txscope` loads none of Kysely, Drizzle or
 * Prisma. Checked on the import graph of src/index.ts (static and dynamic imports alike).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(
  readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../package.json'), 'utf8'),
) as {
  exports: Record<string, unknown>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean } | undefined>;
};
const optional = /^(kysely|drizzle-orm|@prisma\/|prisma)(\/|$)/;

function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const source = readFileSync(file, 'utf8');
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

it('the core imports neither the integrations nor their libraries', () => {
  const { files, packages } = importGraph(resolve(root, 'src/index.ts'));
  expect([...files].filter((f) => /src\/(kysely|drizzle|prisma)\//.test(f))).toEqual([]);
  expect([...packages].filter((p) => optional.test(p))).toEqual([]);
});

it('each integration library is an optional peer dependency', () => {
  for (const name of ['kysely', 'drizzle-orm', '@prisma/client']) {
    expect(pkg.peerDependencies).toHaveProperty([name]);
    expect(pkg.peerDependenciesMeta[name]?.optional).toBe(true);
  }
  for (const subpath of ['./kysely', './drizzle', './prisma']) expect(pkg.exports).toHaveProperty([subpath]);
});
