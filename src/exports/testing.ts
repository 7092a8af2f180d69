/** `txscope/testing`: every test in a transaction that is rolled back (rule 19). */
export { rollbackAfterEach, type TestHooks, withRollback } from '../testing/rollback.js';
