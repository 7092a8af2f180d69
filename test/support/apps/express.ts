import { createServer } from 'node:http';
import express from 'express';
import type { Database } from 'txscope';
import { middleware } from 'txscope/express';
import { listen } from './listen.js';
import { orders, type RunningApp, routes, scopeOptions } from './service.js';

/** Express 5, or Express 4 when given its module: the same middleware serves both. */
export function startExpress(db: Database, lib: typeof express = express): Promise<RunningApp> {
  const r = routes(orders);
  const app = lib();
  app.use(middleware(db, scopeOptions));
  app.use(lib.json());
  app.get('/ping', (_req, res) => {
    res.json(r.ping());
  });
  app.post('/orders', async (req, res, next) => {
    try {
      res.status(201).json(await r.orders(req.body));
    } catch (error) {
      next(error); // Express 4 does not catch a rejected handler itself
    }
  });
  app.post('/fail', async (req, res, next) => {
    try {
      res.json(await r.fail(req.body));
    } catch (error) {
      next(error);
    }
  });
  app.post('/hang', async (req, res, next) => {
    try {
      res.json(await r.hang(req.body));
    } catch (error) {
      next(error);
    }
  });
  app.post('/leak', (req, res) => {
    res.json(r.leak(req.body));
  });
  return listen(createServer(app));
}
