// bench/compare: node-postgres select-only loop, one pg.Client per client, for DURATION seconds.
// Default settings: a query with values and no name is an unnamed Parse/Bind/Execute every time.
// Usage: NODE_PATH=.../node_modules node node_select.js HOST PORT USER PASSWORD DB CLIENTS DURATION
//   -> prints "tps=N txns=N errors=N"
'use strict';
const pg = require('pg');
const [host, port, user, password, database, clients, duration] = process.argv.slice(2);

async function worker(stopAt, counts) {
  const c = new pg.Client({ host, port: Number(port), user, password, database });
  await c.connect();
  let n = 0;
  while (Date.now() < stopAt) {
    try {
      const aid = 1 + Math.floor(Math.random() * 1000000);
      await c.query('SELECT abalance FROM pgbench_accounts WHERE aid = $1', [aid]);
      n++;
    } catch (e) {
      counts.errors++;
    }
  }
  counts.txns += n;
  await c.end();
}

(async () => {
  const counts = { txns: 0, errors: 0 };
  const t0 = Date.now();
  const stopAt = t0 + Number(duration) * 1000;
  await Promise.all(Array.from({ length: Number(clients) }, () => worker(stopAt, counts)));
  const secs = (Date.now() - t0) / 1000;
  console.log(`tps=${(counts.txns / secs).toFixed(1)} txns=${counts.txns} errors=${counts.errors}`);
})().catch((e) => { console.error(e.message); process.exit(1); });
