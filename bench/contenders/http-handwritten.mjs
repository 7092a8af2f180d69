// Workload 3's baseline: an Express 5 app whose POST /users does what the example app's signup does
// (validate, insert user, profile and audit row in one transaction, answer 201 with the user), by
// hand with `pool.connect()`.
import { createServer } from 'node:http';
import express from 'express';
import pg from 'pg';
import { serveHttp } from '../lib/child.mjs';

function parseSignUp(body) {
  const ok = (v, max) => typeof v === 'string' && v.trim() !== '' && v.length <= max;
  if (body === null || typeof body !== 'object' || !ok(body.email, 200) || !ok(body.name, 100)) return null;
  const email = body.email.trim();
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) return null;
  const bio = typeof body.bio === 'string' ? body.bio.trim() : '';
  return { email: email.toLowerCase(), name: body.name.trim(), bio };
}

await serveHttp(async ({ url, pool: max }) => {
  const pool = new pg.Pool({ connectionString: url, max });
  const app = express();
  app.use(express.json({ limit: '16kb' }));
  app.post('/users', async (req, res) => {
    const input = parseSignUp(req.body);
    if (input === null) {
      res.status(400).json({ error: 'invalid signup' });
      return;
    }
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(
        'insert into users (email, name) values ($1, $2) returning id, email, name',
        [input.email, input.name],
      );
      const user = rows[0];
      await client.query('insert into profiles (user_id, bio) values ($1, $2)', [user.id, input.bio]);
      await client.query('insert into audit_log (user_id, action) values ($1, $2)', [
        user.id,
        'user.signed_up',
      ]);
      await client.query('COMMIT');
      res.status(201).json({ ...user, bio: input.bio });
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      if (error.code === '23505') res.status(409).json({ error: 'email taken' });
      else res.status(500).json({ error: 'internal error' });
    } finally {
      client.release();
    }
  });
  return { server: createServer(app), close: () => pool.end() };
});
