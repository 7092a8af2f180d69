import { ensurePrismaClients, PrismaGenerateError } from './prisma-generate.mjs';

// `npm test` has usually generated the clients already (before tsc); this covers `vitest run` alone.
export default async function setup(): Promise<void> {
  try {
    const { generated } = await ensurePrismaClients();
    if (generated.length > 0) {
      process.stderr.write(`[txscope tests] generated the Prisma clients for ${generated.join(', ')}\n`);
    }
  } catch (error) {
    if (!(error instanceof PrismaGenerateError)) throw error;
    // The message says all there is to say; this module's stack would only bury it.
    error.stack = error.message;
    throw error;
  }
}
