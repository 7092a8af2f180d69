// txscope over postgres.js (bench/lib/txscope-contender.mjs has the repositories, service and units).
import postgres from 'postgres';
import { postgresjs } from 'txscope/postgresjs';
import { runTxscopeContender } from '../lib/txscope-contender.mjs';

// The same postgres.js Sql (and copy) as its hand-written contender: only the transaction handling differs.
await runTxscopeContender(({ url, pool: max }) => postgresjs(postgres(url, { max, onnotice: () => {} })));
