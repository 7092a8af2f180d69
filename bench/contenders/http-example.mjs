// Workload 3: the example app (examples/user-service, built by `npm run build:example`) as it is:
// txscope's Express middleware, a UserService whose signUp is @Transactional(), Kysely repositories
// through txscope/kysely, its activity tracker and Server-Timing header. Pool size from POOL_MAX.
import { createServer } from 'node:http';
import { serveHttp } from '../lib/child.mjs';
import { rootDir } from '../lib/config.mjs';

await serveHttp(async ({ url, pool }) => {
  // The example's db module reads these when it is first imported.
  process.env.DATABASE_URL = url;
  process.env.POOL_MAX = String(pool);
  const dist = `${rootDir}examples/user-service/dist/`;
  const { db } = await import(`${dist}db.js`);
  const { migrate } = await import(`${dist}schema.js`);
  const { createApp } = await import(`${dist}app.js`);
  await migrate();
  const { app, activity } = createApp();
  return {
    server: createServer(app),
    close: async () => {
      activity.close();
      await db.close();
    },
  };
});
