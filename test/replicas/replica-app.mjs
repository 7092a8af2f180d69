// One process of the cross-process read-your-writes test: a node:http app on the built library,
// with a primary, one replica and the readYourWrites cookie. It prints {"port": n} once listening.
import { createServer } from 'node:http';
import { withScope } from '../../dist/exports/http.js';
import { pg } from '../../dist/exports/pg.js';
import { createDatabase } from '../../dist/index.js';

const db = createDatabase({
  driver: pg({ connectionString: process.env.PRIMARY_URL, max: 2 }),
  replicas: [pg({ connectionString: process.env.REPLICA_URL, max: 2 })],
  maxReplicaLagMs: 600_000,
});

const json = (res, body) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
};

const server = createServer(
  withScope(
    db,
    async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const id = Number(url.searchParams.get('id'));
      if (req.method === 'POST' && url.pathname === '/write') {
        await db.transaction(() => db.query("insert into items values ($1, 'other process')", [id]));
        return json(res, { written: id });
      }
      const read = await db.transaction(
        async () => {
          const { rows } = await db.query(
            'select pg_is_in_recovery() as standby, (select count(*)::int from items where id = $1) as n',
            [id],
          );
          return { standby: rows[0].standby, seen: rows[0].n === 1 };
        },
        { readOnly: true },
      );
      return json(res, read);
    },
    { readYourWrites: true },
  ),
);

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void db.close().then(() => process.exit(0));
});
