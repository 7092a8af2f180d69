// Generates the Prisma clients of the integration tests (one per provider) from
// test/support/clients/prisma/schema.<dialect>.prisma into the git-ignored
// test/support/clients/prisma/generated/<dialect>/, offline, and only when a schema or the installed
// Prisma changed.
//
// Plain JavaScript because `npm test` runs it with Node 20, which cannot run TypeScript, before tsc
// (the test files import the generated types); vitest's global setup (prisma-clients.ts) calls the
// same function, so `vitest run` alone also works.
//
//   node test/setup/prisma-generate.mjs [--force]
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';

const self = fileURLToPath(import.meta.url);
const root = resolve(dirname(self), '../..');
const clientsDir = join(root, 'test/support/clients/prisma');
const generatedDir = join(clientsDir, 'generated');
const dialects = ['postgres', 'mysql', 'sqlite'];
// Generation takes about a second; a CLI stuck on something unexpected (a download) must not hang the run.
const TIMEOUT_MS = 120_000;

export class PrismaGenerateError extends Error {
  name = 'PrismaGenerateError';
}

export async function ensurePrismaClients({ force = false } = {}) {
  const prisma = await installedPrisma();
  const jobs = await Promise.all(
    dialects.map(async (dialect) => {
      const schema = join(clientsDir, `schema.${dialect}.prisma`);
      const output = join(generatedDir, dialect);
      const stampFile = join(generatedDir, `${dialect}.stamp`);
      const stamp = await stampOf(schema, prisma);
      const fresh = !force && (await isUpToDate(output, stampFile, stamp));
      return { dialect, schema, output, stampFile, stamp, fresh };
    }),
  );
  const stale = jobs.filter((job) => !job.fresh);
  // In parallel: each run reads only its own schema and writes only its own directory, and the
  // environment below keeps the CLI from touching anything shared (no engine download, no telemetry).
  const results = await Promise.allSettled(stale.map((job) => generate(job, prisma)));
  const failures = results.flatMap((result) => (result.status === 'rejected' ? [result.reason] : []));
  if (failures.length > 0) {
    const unexpected = failures.find((failure) => !(failure instanceof PrismaGenerateError));
    if (unexpected !== undefined) throw unexpected;
    throw new PrismaGenerateError(failures.map((failure) => failure.message).join('\n\n'));
  }
  return { generated: stale.map((job) => job.dialect) };
}

async function installedPrisma() {
  const require = createRequire(join(root, 'package.json'));
  const manifest = async (name) => {
    let path;
    try {
      path = require.resolve(`${name}/package.json`);
    } catch {
      throw new PrismaGenerateError(
        `Cannot generate the Prisma test clients: the package ${name} is not installed in ` +
          `${relative(process.cwd(), join(root, 'node_modules')) || 'node_modules'}. Run: npm ci`,
      );
    }
    return { path, json: JSON.parse(await readFile(path, 'utf8')) };
  };
  const [cli, client] = await Promise.all([manifest('prisma'), manifest('@prisma/client')]);
  return {
    cli: join(dirname(cli.path), cli.json.bin.prisma),
    version: cli.json.version,
    clientVersion: client.json.version,
  };
}

// This script is part of the stamp so that a change to how the clients are generated regenerates them.
async function stampOf(schema, prisma) {
  const hash = createHash('sha256');
  for (const part of [
    await readFile(schema),
    await readFile(self),
    `prisma ${prisma.version}`,
    `@prisma/client ${prisma.clientVersion}`,
  ]) {
    hash.update(part).update('\0');
  }
  return `${hash.digest('hex')}\n`;
}

async function isUpToDate(output, stampFile, stamp) {
  try {
    const [written] = await Promise.all([readFile(stampFile, 'utf8'), access(join(output, 'client.ts'))]);
    return written === stamp;
  } catch {
    return false;
  }
}

async function generate({ dialect, schema, output, stampFile, stamp }, prisma) {
  // The stamp goes first and comes back last, so an interrupted run is never taken for a finished one;
  // the old output goes too, since Prisma refuses to write into a directory it does not recognise.
  await rm(stampFile, { force: true });
  await rm(output, { recursive: true, force: true });
  const args = [prisma.cli, 'generate', '--schema', schema];
  const env = {
    CHECKPOINT_DISABLE: '1',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
    // `prisma generate` needs no engine, but the CLI insists that a schema engine binary exists before
    // any command and would download one: any existing file satisfies that check, and generate never runs it.
    PRISMA_SCHEMA_ENGINE_BINARY: self,
  };
  const command = [
    ...Object.entries(env).map(([name, value]) => `${name}=${rel(value)}`),
    'node',
    ...args.map(rel),
  ].join(' ');
  const fail = (cause) =>
    new PrismaGenerateError(
      `Generating the Prisma test client for ${dialect} failed.\n` +
        `  command (from ${root}):\n    ${command}\n` +
        `  cause:\n${indent(cause, '    ')}`,
    );
  try {
    await new Promise((done, failed) => {
      execFile(
        process.execPath,
        args,
        { cwd: root, env: { ...process.env, ...env }, timeout: TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (error === null) done(undefined);
          else failed(Object.assign(error, { output: plain(`${stderr}\n${stdout}`.trim()) }));
        },
      );
    });
  } catch (error) {
    if (error.killed) throw fail(`no answer within ${TIMEOUT_MS / 1000} s; the process was stopped`);
    if (typeof error.code !== 'number')
      throw fail(error.signal ? `stopped by ${error.signal}` : error.message);
    throw fail(`exit code ${error.code}${error.output ? `; its output:\n${error.output}` : ', no output'}`);
  }
  try {
    await access(join(output, 'client.ts'));
  } catch {
    throw fail(
      `the command succeeded but wrote no ${rel(join(output, 'client.ts'))}: the schema's generator ` +
        `must say output = "./generated/${dialect}"`,
    );
  }
  await writeFile(stampFile, stamp);
}

// Prisma colours its errors even into a pipe; escape codes in a CI log only get in the way.
function plain(text) {
  return process.stderr.isTTY ? text : stripVTControlCharacters(text);
}

function rel(path) {
  return path.startsWith(root) ? relative(root, path) : path;
}

function indent(text, prefix) {
  return text
    .split('\n')
    .map((line) => prefix + line)
    .join('\n');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === self) {
  const started = performance.now();
  try {
    const { generated } = await ensurePrismaClients({ force: process.argv.includes('--force') });
    if (generated.length > 0) {
      const ms = Math.round(performance.now() - started);
      process.stderr.write(
        `[txscope tests] generated the Prisma clients for ${generated.join(', ')} in ${ms} ms\n`,
      );
    }
  } catch (error) {
    if (!(error instanceof PrismaGenerateError)) throw error;
    process.stderr.write(`\n${error.message}\n\n`);
    process.exitCode = 1;
  }
}
