import express4 from 'express4';
import type { Database } from 'txscope';
import { startExpress } from './express.js';
import type { RunningApp } from './service.js';

export function startExpress4(db: Database): Promise<RunningApp> {
  return startExpress(db, express4);
}
