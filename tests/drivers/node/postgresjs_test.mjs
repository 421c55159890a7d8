// postgres.js ("postgres" on npm) through pglane (transaction pooling). Its call patterns differ from
// the other drivers': a query without parameters goes as a simple Query; one with parameters is
// prepared under a name of its own (random per connection, a counter behind it) with Parse, Describe
// and a Flush and no Sync, and its Bind/Execute/Sync follows only once the ParameterDescription has
// come back; later runs send Bind/Execute/Sync alone and decode with the columns they were first
// described with. Queries issued together on one connection are pipelined, each with its own Sync.
// A cursor executes the unnamed portal a few rows at a time with Flush and no Sync, outside
// transactions too. On `26000` (FetchPreparedStatement) and `0A000` (RevalidateCachedQuery) it
// forgets the statement and prepares it again.
//
// Run by tests/integration/test_prepared_drivers.c with PGLANE_HOST, PGLANE_PORT, PGLANE_USER,
// PGLANE_PASSWORD and PGLANE_DB set and a section name as the argument: pool, pipeline, cursor,
// unnamed, errors, cancel, copy, schema, listen. Last line "postgres.js <section> OK <version>" on
// success; exit 1 otherwise.
//
// Tables (created by the C test): items(id int primary key, name text, qty int) with ids 1..1000,
// name 'item-<id>', qty id * 3; pjs_rows(worker int, i int, v text, primary key (worker, i));
// pjs_copy(worker int, i int, v text); pjs_shape(id int, v text).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import postgres from 'postgres';

const version = JSON.parse(readFileSync(new URL('node_modules/postgres/package.json', import.meta.url))).version;
const WORKERS = 8;     // connections, more than the lane's 2 server connections

function connect(options = {}) {
  return postgres({
    host: process.env.PGLANE_HOST,
    port: Number(process.env.PGLANE_PORT),
    user: process.env.PGLANE_USER,
    password: process.env.PGLANE_PASSWORD,
    database: process.env.PGLANE_DB,
    max: WORKERS,
    idle_timeout: 0,
    connect_timeout: 30,
    onnotice: () => {},
    ...options,
  });
}

const range = (n) => Array.from({ length: n }, (_, i) => i);
const item = (id) => ({ name: `item-${id}`, qty: id * 3 });

// Every worker runs the same texts with its own values (the same statement under a different name
// on every connection) and a text of its own; transactions with inserts, a failing insert that rolls
// its transaction back, and a savepoint rolled back.
async function poolSection() {
  const sql = connect();
  await Promise.all(range(WORKERS).map(async (k) => {
    for (let i = 0; i < 40; i++) {
      const id = ((i * 7 + k) % 1000) + 1;
      assert.deepEqual([...await sql`SELECT name, qty FROM items WHERE id = ${id}`], [item(id)]);
      const [{ v }] = await sql.unsafe(`SELECT $1::int * ${k + 2} AS v`, [i]);
      assert.equal(v, i * (k + 2));
      await sql.begin(async (tx) => {
        await tx`INSERT INTO pjs_rows VALUES (${k}, ${i}, ${'v' + i})`;
        const [{ n }] = await tx`SELECT count(*)::int AS n FROM pjs_rows WHERE worker = ${k}`;
        assert.equal(n, i + 1);
        await tx.savepoint(async (sp) => {
          await sp`UPDATE pjs_rows SET v = 'gone' WHERE worker = ${k}`;
          throw new Error('roll the savepoint back');
        }).catch((e) => assert.equal(e.message, 'roll the savepoint back'));
        const [{ gone }] = await tx`SELECT count(*)::int AS gone FROM pjs_rows WHERE v = 'gone'`;
        assert.equal(gone, 0);
      });
      await assert.rejects(sql.begin(async (tx) => {
        await tx`INSERT INTO pjs_rows VALUES (${k}, ${1000 + i}, 'rolled back')`;
        await tx`INSERT INTO pjs_rows VALUES (${k}, ${i}, 'dup')`;
      }), (e) => e.code === '23505');
    }
  }));
  // describe(): Parse, Describe, Flush, then a Sync once the RowDescription is read; nothing runs
  const d = await sql`SELECT name, qty FROM items WHERE id = ${1}`.describe();
  assert.deepEqual([d.types, d.columns.map((c) => [c.name, c.type])], [[23], [['name', 25], ['qty', 23]]]);
  const [{ n, back }] = await sql`SELECT count(*)::int AS n, count(*) FILTER (WHERE i >= 1000)::int AS back
                                  FROM pjs_rows`;
  assert.deepEqual([n, back], [WORKERS * 40, 0]);
  await sql.end();
}

// Many queries at once on 4 connections: postgres.js writes them back to back on each (each ends in
// Sync) before any answer; first runs of a text wait for their ParameterDescription, later ones do not.
async function pipelineSection() {
  const sql = connect({ max: 4 });
  for (let round = 0; round < 10; round++) {
    const ids = range(120).map((i) => ((i * 13 + round) % 1000) + 1);
    const rows = await Promise.all(ids.map((id, i) =>
      i % 3 === 0 ? sql`SELECT name, qty FROM items WHERE id = ${id}`
        : i % 3 === 1 ? sql`SELECT qty, name FROM items WHERE id = ${id} AND ${round} >= 0`
          : sql.unsafe(`SELECT name, qty FROM items WHERE id = ${id}`)));
    rows.forEach((r, i) => assert.deepEqual({ ...r[0] }, item(ids[i])));
  }
  // a failing query in the middle of a pipeline fails alone
  const got = await Promise.allSettled(range(30).map((i) =>
    i === 11 ? sql`SELECT 1 / ${0}::int AS q` : sql`SELECT ${i}::int + 1 AS q`));
  got.forEach((g, i) => {
    if (i === 11) assert.equal(g.reason.code, '22012');
    else assert.equal(g.value[0].q, i + 1);
  });
  // transactions pipelined inside: several statements issued at once within sql.begin
  await Promise.all(range(4).map((k) => sql.begin((tx) => range(20).map((i) =>
    tx`INSERT INTO pjs_rows VALUES (${100 + k}, ${i}, ${'p' + i})`))));
  const [{ n }] = await sql`SELECT count(*)::int AS n FROM pjs_rows WHERE worker BETWEEN 100 AND 103`;
  assert.equal(n, 80);
  await sql.end();
}

// Cursors: the unnamed portal executed 7 rows at a time with Flush and no Sync; outside a
// transaction the server connection stays with the client until the cursor ends.
async function cursorSection() {
  const sql = connect();
  await Promise.all(range(WORKERS).map(async (k) => {
    for (let round = 0; round < 5; round++) {
      let seen = 0, batches = 0;
      const lo = k * 100 + 1;
      for await (const rows of sql`SELECT id, name FROM items WHERE id BETWEEN ${lo} AND ${lo + 49} ORDER BY id`.cursor(7)) {
        rows.forEach((r, j) => assert.equal(r.id, lo + seen + j));
        seen += rows.length;
        batches++;
        if (round === 4 && seen >= 21) break;       // closed early: Close of the portal, then Sync
      }
      assert.equal(seen, round === 4 ? 21 : 50);
      assert.equal(batches, round === 4 ? 3 : 8);
      await sql.begin(async (tx) => {
        let total = 0;
        await tx`SELECT qty FROM items WHERE id <= ${20 + k}`.cursor(3, (rows) => {
          rows.forEach((r) => { total += r.qty; });
        });
        assert.equal(total, 3 * ((20 + k) * (21 + k)) / 2);
      });
    }
  }));
  await sql.end();
}

// prepare: false, the setting documented for poolers without statement support: every query is an
// unnamed Parse/Describe/Bind/Execute/Sync.
async function unnamedSection() {
  // target_session_attrs: each connection first asks, in one simple Query of two statements, whether
  // the server is read-only or in recovery
  const sql = connect({ prepare: false, target_session_attrs: 'read-write' });
  await Promise.all(range(WORKERS).map(async (k) => {
    for (let i = 0; i < 40; i++) {
      const id = ((i * 11 + k) % 1000) + 1;
      assert.deepEqual([...await sql`SELECT name, qty FROM items WHERE id = ${id}`], [item(id)]);
      await sql.begin(async (tx) => {
        await tx`INSERT INTO pjs_rows VALUES (${200 + k}, ${i}, ${null})`;
      });
    }
  }));
  const [{ n }] = await sql`SELECT count(*)::int AS n FROM pjs_rows WHERE worker >= 200`;
  assert.equal(n, WORKERS * 40);
  await sql.end();
}

// Errors of every kind leave each connection usable: in a describe-first Parse (syntax), in a Bind
// (a value of the wrong type), in execution, in a simple Query of several statements, and a
// transaction left failed and rolled back.
async function errorsSection() {
  const sql = connect();
  await Promise.all(range(WORKERS).map(async (k) => {
    for (let i = 0; i < 10; i++) {
      await assert.rejects(sql.unsafe('SELEC $1::int', [i]), (e) => e.code === '42601');
      await assert.rejects(sql`SELECT ${'x' + i}::int AS v`, (e) => e.code === '22P02');
      await assert.rejects(sql`SELECT 1 / (${i}::int - ${i}::int) AS v`, (e) => e.code === '22012');
      await assert.rejects(sql.unsafe(`SELECT ${k}; SELECT 1/0; SELECT 3`), (e) => e.code === '22012');
      const [{ v }] = await sql`SELECT ${i}::int * 2 AS v`;
      assert.equal(v, i * 2);
      await assert.rejects(sql.begin(async (tx) => {
        await tx`INSERT INTO pjs_rows VALUES (${300 + k}, ${i}, 'rolled back')`;
        await tx`SELECT 1 / ${0}::int`;
      }), (e) => e.code === '22012');
      const many = await sql.unsafe(`SELECT ${k} AS a; SELECT ${i} AS b`);
      assert.deepEqual([many[0][0].a, many[1][0].b], [k, i]);
    }
  }));
  const [{ n }] = await sql`SELECT count(*)::int AS n FROM pjs_rows WHERE worker >= 300`;
  assert.equal(n, 0);
  await sql.end();
}

// query.cancel() sends a CancelRequest on a connection of its own: for a query running on a server
// and for one waiting in the lane's queue behind the two that hold the servers.
//
// Each sleep runs on a connection reserved first, so each is sent at once on a connection that is
// logged in. A query handed to a connection still logging in (or still running postgres.js's own
// array-types query) is rejected by cancel() without a CancelRequest, but postgres.js 3.4 then never
// gives that connection back to its pool and sql.end() waits for it for ever: in a slow run
// (ThreadSanitizer) a new connection's types query queued behind the sleeps, and the test hung.
//
// The queued sleeps are cancelled (and answered) before the running ones: a running sleep's cancel
// frees its server, which goes to a queued sleep at once; a cancel of that sleep arriving a moment
// later can land between its Describe and its Bind, where PostgreSQL ignores a cancel (as it does
// directly), and the sleep would run its 30 s.
async function cancelSection() {
  const sql = connect();
  // pglane's admin console (simple queries only: no type lookup) tells when the sleeps run and queue.
  const admin = connect({ database: 'pglane', max: 1, fetch_types: false });
  const lane = async () => {
    const [r] = await admin.unsafe('SHOW LANES');
    return { active: Number(r.clients_active), waiting: Number(r.clients_waiting) };
  };
  const until = async (what, ok) => {
    const t = Date.now();
    for (let s = await lane(); !ok(s); s = await lane()) {
      assert.ok(Date.now() - t < 20000, `${what}: still ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const conns = await Promise.all(range(4).map(() => sql.reserve()));
  const running = conns.slice(0, 2).map((c, i) => c`SELECT pg_sleep(${30 + i})`.execute());
  await until('two sleeps running', (s) => s.active === 2);
  const queued = conns.slice(2).map((c, i) => c`SELECT pg_sleep(${32 + i})`.execute());
  await until('two sleeps queued', (s) => s.waiting === 2);
  const t0 = Date.now();
  const end = (q) => q.then(() => 'finished', (e) => `${e.code}${/waited in lane/.test(e.detail) ? ' queued' : ''}`);
  queued.forEach((q) => q.cancel());
  assert.deepEqual(await Promise.all(queued.map(end)), ['57014 queued', '57014 queued']);
  running.forEach((q) => q.cancel());
  assert.deepEqual(await Promise.all(running.map(end)), ['57014', '57014']);
  assert.ok(Date.now() - t0 < 15000, `cancels took ${Date.now() - t0} ms`);
  conns.forEach((c) => c.release());
  const [{ v }] = await sql`SELECT ${7}::int AS v`;
  assert.equal(v, 7);
  await admin.end();
  await sql.end();
}

// COPY through streams: rows written with a Writable, read back with a Readable.
async function copySection() {
  const sql = connect();
  await Promise.all(range(4).map(async (k) => {
    const w = await sql`COPY pjs_copy (worker, i, v) FROM STDIN`.writable();
    await new Promise((resolve, reject) => {
      w.on('error', reject);
      w.on('finish', resolve);
      for (let i = 0; i < 500; i++)
        w.write(`${k}\t${i}\tc${i}\n`);
      w.end();
    });
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM pjs_copy WHERE worker = ${k}`;
    assert.equal(n, 500);
    const r = await sql.unsafe(`COPY (SELECT i FROM pjs_copy WHERE worker = ${k} ORDER BY i) TO STDOUT`).readable();
    let text = '';
    for await (const chunk of r)
      text += chunk.toString();
    assert.equal(text, range(500).map((i) => `${i}\n`).join(''));
  }));
  await sql.end();
}

// A table change between two runs of a statement every connection has prepared: postgres.js
// decodes with the columns it was described with, so it must get PostgreSQL's 0A000 (it prepares
// again then) and never rows of the new shape. Each reserved connection runs one read at a time
// (postgres.js 3.4 waits forever when a query pipelined behind another gets 0A000, directly too).
async function schemaSection() {
  const sql = connect();
  const admin = connect({ max: 1 });
  await admin`INSERT INTO pjs_shape SELECT g, 'v' || g FROM generate_series(1, 10) g`;
  const conns = await Promise.all(range(WORKERS).map(() => sql.reserve()));
  const readAll = (check) => Promise.all(conns.map(async (c, k) => {
    for (let i = 0; i < 3; i++) {
      const id = ((k * 3 + i) % 10) + 1;
      const [r] = await c`SELECT * FROM pjs_shape WHERE id = ${id}`;
      check(r, id);
    }
  }));
  await readAll((r, id) => assert.deepEqual({ ...r }, { id, v: `v${id}` }));
  for (let round = 0; round < 3; round++) {
    await admin.unsafe(`ALTER TABLE pjs_shape ADD COLUMN c${round} int DEFAULT ${round}`);
    await readAll((r, id) => {
      assert.equal(Object.keys(r).length, 3 + round, JSON.stringify(r));
      assert.equal(r[`c${round}`], round, JSON.stringify(r));
      assert.equal(r.id, id);
    });
  }
  await admin.unsafe('ALTER TABLE pjs_shape ALTER COLUMN id TYPE bigint');
  await readAll((r, id) => assert.equal(r.id, String(id)));    // int8 is decoded as a string
  await admin.unsafe('ALTER TABLE pjs_shape DROP COLUMN v');
  await readAll((r, id) => assert.deepEqual(Object.keys(r), ['id', 'c0', 'c1', 'c2'], String(id)));
  conns.forEach((c) => c.release());
  await admin.end();
  await sql.end();
}

// sql.listen: a connection of its own runs LISTEN (pglane pins it to its server connection) and
// receives the notifications of 4 connections' sql.notify, sent between their transactions and in them.
async function listenSection() {
  const sql = connect();
  const got = [];
  let all;
  const done = new Promise((resolve) => { all = resolve; });
  await sql.listen('pjs_chan', (payload) => {
    got.push(payload);
    if (got.length === 40)
      all();
  });
  await Promise.all(range(4).map(async (k) => {
    for (let i = 0; i < 5; i++) {
      await sql.notify('pjs_chan', `${k}:${i}`);
      await sql.begin(async (tx) => {
        await tx`SELECT pg_notify('pjs_chan', ${`${k}:tx${i}`})`;
      });
    }
  }));
  const timer = setTimeout(all, 10000);
  await done;
  clearTimeout(timer);
  assert.deepEqual(got.slice().sort(),
    range(4).flatMap((k) => range(5).flatMap((i) => [`${k}:${i}`, `${k}:tx${i}`])).sort());
  await sql.end();
}

const sections = {
  pool: poolSection, pipeline: pipelineSection, cursor: cursorSection, unnamed: unnamedSection,
  errors: errorsSection, cancel: cancelSection, copy: copySection, schema: schemaSection,
  listen: listenSection,
};
const name = process.argv[2];
if (!sections[name]) {
  console.error(`usage: postgresjs_test.mjs ${Object.keys(sections).join('|')}`);
  process.exit(2);
}
const timer = setTimeout(() => { console.error(`postgres.js ${name}: timed out`); process.exit(1); }, 100000);
try {
  await sections[name]();
  clearTimeout(timer);
  console.log(`postgres.js ${name} OK ${version}`);
} catch (e) {
  console.error(e);
  process.exit(1);
}
