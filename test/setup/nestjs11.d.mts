// The types of nestjs11.mjs, which stays JavaScript so that Node 20 runs it before tsc.

export declare const nest11Dir: string;
export declare class Nest11InstallError extends Error {}
export declare function ensureNest11(): Promise<boolean>;
