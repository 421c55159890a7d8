// node-postgres through pglane (transaction pooling): a pg.Pool of 10 clients over a lane of 2
// server connections, named statements {name, text, values} reused across pool checkouts.
// Run by tests/integration/test_prepared_drivers.c with PGLANE_HOST, PGLANE_PORT, PGLANE_USER,
// PGLANE_PASSWORD, PGLANE_DB set. Last line "node-postgres OK <version>" on success; exit 1 otherwise.
'use strict';
const assert = require('assert');
const pg = require('pg');
const pgVersion = require('pg/package.json').version;

const pool = new pg.Pool({
  host: process.env.PGLANE_HOST,
  port: Number(process.env.PGLANE_PORT),
  user: process.env.PGLANE_USER,
  password: process.env.PGLANE_PASSWORD,
  database: process.env.PGLANE_DB,
  max: 10,
  idleTimeoutMillis: 0,
  connectionTimeoutMillis: 20000,
});

const ITEM = { name: 'item', text: 'SELECT name, qty FROM items WHERE id = $1' };
const ADD = { name: 'add', text: 'SELECT $1::int + $2::int AS s' };
const INS = { name: 'ins', text: 'INSERT INTO node_rows (worker, i) VALUES ($1, $2)' };
const DIV = { name: 'div', text: 'SELECT 100 / $1::int AS q' };

async function task(k, i) {
  const id = ((i * 7 + k) % 1000) + 1;
  // Pool.query: a checkout of any of the 10 clients; the named statement is prepared once per
  // client (node-postgres remembers it) and then only bound, whatever server pglane picks.
  const r = await pool.query({ ...ITEM, values: [id] });
  assert.deepStrictEqual(r.rows, [{ name: `item-${id}`, qty: id * 3 }]);
  const s = await pool.query({ ...ADD, values: [i, k] });
  assert.strictEqual(s.rows[0].s, i + k);
}

async function txTask(k) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (let i = 0; i < 5; i++)
      await client.query({ ...INS, values: [k, i] });
    const r = await client.query({ name: 'cnt', text: 'SELECT count(*)::int AS n FROM node_rows WHERE worker = $1', values: [k] });
    assert.strictEqual(r.rows[0].n, 5);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

async function main() {
  // Open all 10 clients of the pool at once (5 per server connection of the lane).
  const held = [];
  for (let k = 0; k < 10; k++)
    held.push(pool.connect());
  for (const c of await Promise.all(held)) {
    const r = await c.query({ ...ITEM, values: [1] });
    assert.deepStrictEqual(r.rows, [{ name: 'item-1', qty: 3 }]);
    c.release();
  }
  assert.strictEqual(pool.totalCount, 10);
  await pool.query('DELETE FROM node_rows');
  // Many concurrent tasks over the pool: statements move between server connections.
  for (let round = 0; round < 10; round++) {
    const jobs = [];
    for (let k = 0; k < 40; k++)
      jobs.push(task(k, round));
    await Promise.all(jobs);
  }
  // Transactions on checked-out clients, with named statements inside.
  const tx = [];
  for (let k = 0; k < 20; k++)
    tx.push(txTask(k));
  await Promise.all(tx);
  const n = await pool.query('SELECT count(*)::int AS n, count(DISTINCT worker)::int AS w FROM node_rows');
  assert.deepStrictEqual(n.rows[0], { n: 100, w: 20 });

  // Every client of the pool really prepared the named statements (node-postgres' own bookkeeping),
  // and the pool had more clients than pglane has server connections.
  assert.strictEqual(pool.totalCount, 10);
  const clients = [];
  for (let k = 0; k < 10; k++)
    clients.push(await pool.connect());
  let prepared = 0;
  for (const c of clients) {
    if (c.connection.parsedStatements.item === ITEM.text)
      prepared++;
    // And each keeps working for a statement it prepared earlier.
    const r = await c.query({ ...ITEM, values: [500] });
    assert.deepStrictEqual(r.rows, [{ name: 'item-500', qty: 1500 }]);
  }
  clients.forEach((c) => c.release());
  assert.strictEqual(prepared, 10);
  // A named statement whose execution fails: the error reaches that query, the statement stays usable.
  // (pg-pool discards a client whose query failed, so this comes last.)
  const errs = [];
  for (let k = 0; k < 20; k++)
    errs.push(pool.query({ ...DIV, values: [k % 2 ? 0 : 4] }).then(
      (r) => { assert.strictEqual(k % 2, 0); assert.strictEqual(r.rows[0].q, 25); },
      (e) => { assert.strictEqual(k % 2, 1); assert.strictEqual(e.code, '22012'); }));
  await Promise.all(errs);
  // On one client: the failed execution, then the same named statement again, now fine.
  for (let i = 0; i < 5; i++) {
    const c = await pool.connect();
    await assert.rejects(c.query({ ...DIV, values: [0] }), (e) => e.code === '22012');
    const r = await c.query({ ...DIV, values: [5] });
    assert.strictEqual(r.rows[0].q, 20);
    c.release();
  }

  await pool.end();
  console.log(`node-postgres OK ${pgVersion} (node ${process.version})`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
