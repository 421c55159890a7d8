#!/usr/bin/python3
"""asyncpg through pglane (transaction pooling): asyncpg prepares every statement it runs under
names of its own (__asyncpg_stmt_<n>__, the same names with other texts in every connection), caches
them per connection, learns column types with a Parse/Describe/Flush before a COPY, introspects
custom types, cancels on timeouts and resets a connection it takes back into its pool.

Run by tests/integration/test_prepared_drivers.c with PGLANE_HOST, PGLANE_PORT, PGLANE_USER,
PGLANE_PASSWORD and PGLANE_DB set, and a section name as the argument: pool, copy, types, schema,
cancel, reset. Prints "asyncpg <section> OK <version>" as its last line on success; any failure raises.

Tables and types (created by the C test): items(id int primary key, name text, qty int) with ids
1..1000, name 'item-<id>', qty id * 3; apg_rows(worker int, i int, v text, primary key (worker, i));
apg_copy(worker int, i int, v text); apg_kinds(id int primary key, m apg_mood, p apg_pair, d apg_pos,
j jsonb, arr int[]) with the enum apg_mood ('sad', 'ok', 'happy'), the composite apg_pair (a int, b
text) and the domain apg_pos (int > 0); apg_shape(id int, v text).
"""
import asyncio
import io
import json
import os
import sys

import asyncpg

WORKERS = 8                         # asyncpg connections, more than the lane's 2 server connections
CONNECT = dict(host=os.environ["PGLANE_HOST"], port=int(os.environ["PGLANE_PORT"]),
               user=os.environ["PGLANE_USER"], password=os.environ["PGLANE_PASSWORD"],
               database=os.environ["PGLANE_DB"])


async def gather_workers(fn, n=WORKERS):
    await asyncio.wait_for(asyncio.gather(*[fn(k) for k in range(n)]), 90)


async def pool_section():
    """Every worker runs the same statements with its own values and texts of its own under the same
    asyncpg names; results are checked arithmetically."""
    pool = await asyncpg.create_pool(min_size=WORKERS, max_size=WORKERS, **CONNECT)

    async def worker(k):
        mine = "SELECT $1::int * %d AS v" % (k + 2)     # asyncpg names it like the others' texts
        for i in range(60):
            ident = (i * 7 + k) % 1000 + 1
            async with pool.acquire() as c:
                row = await c.fetchrow("SELECT name, qty FROM items WHERE id = $1", ident)
                assert (row["name"], row["qty"]) == ("item-%d" % ident, ident * 3), (ident, row)
                assert await c.fetchval(mine, i) == i * (k + 2)
                async with c.transaction():
                    await c.execute("INSERT INTO apg_rows VALUES ($1, $2, $3)", k, i, "v%d" % i)
                    n = await c.fetchval("SELECT count(*) FROM apg_rows WHERE worker = $1 AND i < 1000", k)
                    assert n == i + 1, (k, i, n)
                try:                                      # an error inside a transaction rolls it back
                    async with c.transaction():
                        await c.execute("INSERT INTO apg_rows VALUES ($1, $2, 'dup')", k, i)
                    raise AssertionError("duplicate key accepted")
                except asyncpg.UniqueViolationError:
                    pass
                if i % 5 == 0:                             # a named portal, fetched 2 rows at a time
                    async with c.transaction():
                        total = 0
                        async for r in c.cursor("SELECT generate_series(1, $1::int) AS g", i + 3, prefetch=2):
                            total += r["g"]
                        assert total == (i + 3) * (i + 4) // 2, (i, total)
                if i % 7 == 0:                             # an explicit prepared statement, used twice
                    st = await c.prepare("SELECT $1::int + %d, $2::text" % k)
                    assert [p.name for p in st.get_parameters()] == ["int4", "text"]
                    assert tuple(await st.fetchrow(i, "x")) == (i + k, "x")
                    assert tuple(await st.fetchrow(i + 1, "y")) == (i + 1 + k, "y")
                if i % 10 == 0:                            # atomic: a failing batch leaves nothing
                    try:
                        await c.executemany("INSERT INTO apg_rows VALUES ($1, $2, 'many')",
                                            [(k, 1000 + i), (k, i), (k, 2000 + i)])
                        raise AssertionError("executemany with a duplicate succeeded")
                    except asyncpg.UniqueViolationError:
                        pass
                    await c.executemany("INSERT INTO apg_rows VALUES ($1, $2, 'many')",
                                        [(k, 3000 + i), (k, 4000 + i)])
        async with pool.acquire() as c:
            rows = await c.fetch("SELECT i, v FROM apg_rows WHERE worker = $1 ORDER BY i", k)
            want = [(i, "v%d" % i) for i in range(60)] + \
                   [(3000 + i, "many") for i in range(0, 60, 10)] + [(4000 + i, "many") for i in range(0, 60, 10)]
            assert sorted((r["i"], r["v"]) for r in rows) == sorted(want), (k, len(rows))

    await gather_workers(worker)
    await pool.close()


async def copy_section():
    """copy_records_to_table parses and describes a statement with a Flush (no Sync), then sends COPY
    FROM STDIN as a simple Query with its data right behind it; plus COPY from a file-like source and
    COPY TO an output, from several connections at once."""
    async def worker(k):
        c = await asyncpg.connect(**CONNECT)
        try:
            for rnd in range(5):
                base = rnd * 100
                await asyncio.wait_for(c.copy_records_to_table(
                    "apg_copy", records=[(k, base + i, "r%d" % i) for i in range(50)]), 20)
                src = io.BytesIO("".join("%d\t%d\tf%d\n" % (k, base + 50 + i, i) for i in range(20)).encode())
                await asyncio.wait_for(c.copy_to_table("apg_copy", source=src), 20)
                assert await c.fetchval("SELECT count(*) FROM apg_copy WHERE worker = $1", k) == (rnd + 1) * 70
            out = io.BytesIO()
            await asyncio.wait_for(c.copy_from_query(
                "SELECT i FROM apg_copy WHERE worker = $1 ORDER BY i", k, output=out), 20)
            got = [int(x) for x in out.getvalue().decode().split()]
            assert got == sorted(r * 100 + i for r in range(5) for i in range(70)), (k, got[:5])
        finally:
            await c.close()

    await gather_workers(worker)


async def types_section():
    """Custom types make asyncpg introspect pg_type with statements of its own, and decode rows with
    the codecs it built from them (binary results), in every connection."""
    a = await asyncpg.connect(**CONNECT)
    b = await asyncpg.connect(**CONNECT)
    others = [await asyncpg.connect(**CONNECT) for _ in range(4)]   # keep the 2 server connections busy
    try:
        await a.execute("INSERT INTO apg_kinds VALUES ($1, $2, $3, $4, $5, $6)",
                        1, "happy", (7, "seven"), 5, json.dumps({"k": [1, 2]}), [3, 1, 2])
        for c in [b] + others:
            r = await c.fetchrow("SELECT m, p, d, j, arr FROM apg_kinds WHERE id = $1", 1)
            assert r["m"] == "happy" and tuple(r["p"]) == (7, "seven") and r["d"] == 5, r
            assert json.loads(r["j"]) == {"k": [1, 2]} and r["arr"] == [3, 1, 2], r
        await b.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        assert await b.fetchval("SELECT j FROM apg_kinds WHERE id = $1", 1) == {"k": [1, 2]}
        try:
            await a.execute("INSERT INTO apg_kinds(id, m) VALUES (2, $1)", "angry")
            raise AssertionError("bad enum value accepted")
        except asyncpg.InvalidTextRepresentationError:
            pass
    finally:
        for c in [a, b] + others:
            await c.close()


async def schema_section():
    """Columns added and a type changed under a statement every connection has cached (asyncpg keeps the
    columns it was told): PostgreSQL refuses to run it (0A000, "cached plan must not change result
    type"), which asyncpg answers by preparing it again, outside a transaction, or raises as
    InvalidCachedStatementError inside one. Through pglane the server connection a statement lands on
    may never have prepared it: pglane checks its columns there first (a result-shape probe)."""
    a = await asyncpg.connect(**CONNECT)
    b = await asyncpg.connect(**CONNECT)
    others = [await asyncpg.connect(**CONNECT) for _ in range(4)]
    try:
        await b.execute("INSERT INTO apg_shape VALUES (1, 'one')")
        for step in range(3):
            for c in [a] + others:
                r = await c.fetch("SELECT * FROM apg_shape WHERE id = $1", 1)
                assert len(r) == 1 and len(r[0]) == 2 + step, (step, r)
            await b.execute("ALTER TABLE apg_shape ADD COLUMN c%d int DEFAULT %d" % (step, step))
        await b.execute("ALTER TABLE apg_shape ALTER COLUMN v TYPE int USING length(v)")
        for c in [a] + others:
            r = await c.fetch("SELECT * FROM apg_shape WHERE id = $1", 1)
            assert r[0]["v"] == 3 and r[0]["c2"] == 2, r
        async with a.transaction():
            await b.execute("ALTER TABLE apg_shape ADD COLUMN c9 int")
            try:
                await a.fetch("SELECT * FROM apg_shape WHERE id = $1", 1)
                raise AssertionError("a changed result type went unnoticed in a transaction")
            except asyncpg.InvalidCachedStatementError:
                pass
        assert len((await a.fetch("SELECT * FROM apg_shape WHERE id = $1", 1))[0]) == 6
        for c in others:                           # (each has it cached with 6 columns now)
            assert len((await c.fetch("SELECT * FROM apg_shape WHERE id = $1", 1))[0]) == 6
        await b.execute("ALTER TABLE apg_shape ADD COLUMN c10 int")
        for c in [a] + others:                     # the statement is not a transaction's first
            try:
                async with c.transaction():
                    assert await c.fetchval("SELECT 1") == 1
                    await c.fetch("SELECT * FROM apg_shape WHERE id = $1", 1)
                raise AssertionError("a changed result type went unnoticed after a transaction's first statement")
            except asyncpg.InvalidCachedStatementError:
                pass
            assert len((await c.fetch("SELECT * FROM apg_shape WHERE id = $1", 1))[0]) == 7
    finally:
        for c in [a, b] + others:
            await c.close()


async def cancel_section():
    """A query timeout makes asyncpg send a CancelRequest of its own and wait for the query's end; the
    connection then runs the next statement. Several connections at once, over 2 server connections."""
    async def worker(k):
        c = await asyncpg.connect(**CONNECT)
        try:
            for i in range(3):
                try:
                    await c.fetchval("SELECT pg_sleep(30)", timeout=0.5)
                    raise AssertionError("pg_sleep(30) returned within the timeout")
                except asyncio.TimeoutError:
                    pass
                assert await c.fetchval("SELECT $1::int + 1", k * 10 + i) == k * 10 + i + 1
        finally:
            await c.close()

    t0 = asyncio.get_running_loop().time()
    await gather_workers(worker, 4)
    elapsed = asyncio.get_running_loop().time() - t0
    assert elapsed < 25, "cancels did not end the sleeps (%.1f s)" % elapsed


async def reset_section():
    """A pool's connection is reset when it comes back (asyncpg: pg_advisory_unlock_all, CLOSE ALL,
    UNLISTEN *, RESET ALL): a worker's settings never reach another, the startup's stay."""
    pool = await asyncpg.create_pool(min_size=4, max_size=4, server_settings={"application_name": "apg"},
                                     **CONNECT)

    async def worker(k):
        for i in range(20):
            async with pool.acquire() as c:
                assert await c.fetchval("SHOW work_mem") == "4MB"
                assert await c.fetchval("SHOW application_name") == "apg"
                await c.execute("SET work_mem = '%dMB'" % (k + 5))
                assert await c.fetchval("SHOW work_mem") == "%dMB" % (k + 5)
                assert await c.fetchval("SELECT pg_try_advisory_lock($1)", 100 + k)

    await gather_workers(worker, 6)
    await pool.close()


SECTIONS = {"pool": pool_section, "copy": copy_section, "types": types_section, "schema": schema_section,
            "cancel": cancel_section, "reset": reset_section}

if __name__ == "__main__":
    section = sys.argv[1]
    asyncio.run(SECTIONS[section]())
    print("asyncpg %s OK %s" % (section, asyncpg.__version__))
