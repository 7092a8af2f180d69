import { readFileSync } from 'node:fs';
import express, { type NextFunction, type Request, type Response } from 'express';
import { isRetryable, TxScopeError } from 'txscope';
import { middleware } from 'txscope/express';
import { Activity } from './activity.js';
import { db } from './db.js';
import { HttpError } from './errors.js';
import { TransferService } from './services/transfer-service.js';
import { UserService } from './services/user-service.js';
import { parseSignUp, parseTransfer, positiveInteger } from './validation.js';

const page = readFileSync(new URL('../public/index.html', import.meta.url), 'utf8');

export function createApp() {
  const users = new UserService();
  const transfers = new TransferService();
  const activity = new Activity(db);
  const app = express();

  // The scope opens before anything else, so body parsing and every handler run inside it.
  app.use(middleware(db, { serverTiming: true }));
  app.use(activity.track);
  app.use(express.json({ limit: '16kb' }));

  app.get('/', (_req, res) => {
    res.type('html').send(page);
  });
  app.get('/events', activity.stream);
  app.get('/health', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/stats', (_req, res) => {
    res.json(db.stats());
  });
  app.post('/users', async (req, res) => {
    res.status(201).json(await users.signUp(parseSignUp(req.body)));
  });
  app.get('/users/:id', async (req, res) => {
    res.json(await users.get(positiveInteger(req.params.id, 'id')));
  });
  app.get('/accounts', async (_req, res) => {
    res.json(await transfers.accounts());
  });
  app.post('/transfers', async (req, res) => {
    const { from, to, amount } = parseTransfer(req.body);
    res.json(await transfers.transfer(from, to, amount));
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof HttpError) {
      res.status(error.status).json({ error: error.message, ...(error.field ? { field: error.field } : {}) });
    } else if ((error as { type?: string }).type === 'entity.parse.failed') {
      res.status(400).json({ error: 'the body is not valid JSON', field: 'body' });
    } else if (error instanceof TxScopeError && error.code === 'ERR_ABORTED') {
      // The client went away mid-request: its transaction was rolled back; nobody reads this answer.
      if (!res.headersSent) res.status(499).end();
    } else if ((error instanceof TxScopeError && error.code === 'ERR_POOL_TIMEOUT') || isRetryable(error)) {
      // Still conflicting after every retry, or no connection in time: nothing was written.
      res.status(503).json({ error: 'the database is busy; try again' });
    } else if (!res.headersSent) {
      console.error(error);
      res.status(500).json({ error: 'internal error' });
    }
  });
  return { app, activity };
}
