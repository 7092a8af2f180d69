// txscope over node-postgres (bench/lib/txscope-contender.mjs has the repositories, service and units).
import pg from 'pg';
import { pg as pgDriver } from 'txscope/pg';
import { runTxscopeContender } from '../lib/txscope-contender.mjs';

// The same pg.Pool (and pg copy) as the baseline: only the transaction handling differs.
await runTxscopeContender(({ url, pool: max }) => pgDriver(new pg.Pool({ connectionString: url, max })));
