// The types of prisma-generate.mjs, which stays JavaScript so that Node 20 runs it before tsc.

/** A generation that failed for a known reason; its message names the command and the cause. */
export declare class PrismaGenerateError extends Error {}

/** Generates the clients whose schema, generator or Prisma version changed (all with `force`). */
export declare function ensurePrismaClients(options?: { force?: boolean }): Promise<{ generated: string[] }>;
