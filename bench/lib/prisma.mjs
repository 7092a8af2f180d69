// Generates the bench's Prisma client offline. Prisma 7's `generate` needs no engine, but its CLI
// insists that a schema engine binary exists and would download one: any existing file passes that
// check (the same trick as test/support/clients/prisma/generate.sh), and generate never runs it.
// The generated client is TypeScript; the root's TypeScript transpiles it to node_modules/.prisma-bench/js (regenerated after every npm ci).
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { benchDir, rootDir } from './config.mjs';

const schema = join(benchDir, 'prisma/schema.prisma');
const generated = join(benchDir, 'node_modules/.prisma-bench/ts');
const output = join(benchDir, 'node_modules/.prisma-bench/js');
export const prismaClientPath = join(output, 'client.js');

async function mtime(path) {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

async function* walk(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else yield path;
  }
}

/** Makes node_modules/.prisma-bench/js/client.js when missing or older than the schema. */
export async function ensurePrismaClient() {
  if ((await mtime(prismaClientPath)) > (await mtime(schema))) return prismaClientPath;
  await rm(join(benchDir, 'node_modules/.prisma-bench'), { recursive: true, force: true });
  const cli = join(benchDir, 'node_modules/prisma/build/index.js');
  await promisify(execFile)(process.execPath, [cli, 'generate', '--schema', schema], {
    cwd: benchDir,
    env: {
      ...process.env,
      CHECKPOINT_DISABLE: '1',
      PRISMA_HIDE_UPDATE_MESSAGE: '1',
      PRISMA_SCHEMA_ENGINE_BINARY: schema,
    },
  });
  const ts = createRequire(join(rootDir, 'package.json'))('typescript');
  for await (const file of walk(generated)) {
    if (!file.endsWith('.ts')) continue;
    const { outputText } = ts.transpileModule(await readFile(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    const target = join(output, relative(generated, file)).replace(/\.ts$/, '.js');
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, outputText);
  }
  return prismaClientPath;
}
