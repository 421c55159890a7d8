#!/usr/bin/python3
"""psycopg 3 through pglane (transaction pooling): server-side prepared statements after
prepare_threshold, executemany, pipeline mode, several connections in threads.

Run by tests/integration/test_prepared_drivers.c with PGLANE_DSN set (a libpq conninfo) and a
section name as the argument: basic, executemany, pipeline, rotate. Prints "psycopg <section> OK
<version>" as its last line on success; any failure raises (exit code != 0).

Tables (created by the C test): items(id int primary key, name text, qty int) with ids 1..1000,
name 'item-<id>', qty id * 3; py_rows(worker int, i int, v text).
"""
import os
import sys
import threading

import psycopg

DSN = os.environ["PGLANE_DSN"]
THREADS = 6
ITEM_SQL = "SELECT name, qty FROM items WHERE id = %s"


def server_has_statement(conn, text):
    """In the current transaction: is `text` prepared on this server connection (any name)?"""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", (text,),
                    prepare=False)
        return cur.fetchone()[0] >= 1


def run_threads(fn):
    errors = []

    def wrap(k):
        try:
            fn(k)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append("worker %d: %r" % (k, e))

    ts = [threading.Thread(target=wrap, args=(k,)) for k in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts), "a worker did not finish within 60 s"
    assert not errors, "; ".join(errors)


def basic(k):
    # Threshold 0: prepared at the first execution; 1: from the second one (psycopg's default is 5).
    with psycopg.connect(DSN, prepare_threshold=k % 2, autocommit=True) as conn:
        mine = "SELECT %%s::int * %d" % (k + 2)   # same psycopg name (_pg3_n) in every worker,
        for i in range(150):                        # different text
            ident = (i * 7 + k) % 1000 + 1
            row = conn.execute(ITEM_SQL, (ident,)).fetchone()
            assert row == ("item-%d" % ident, ident * 3), (ident, row)
            v = conn.execute(mine, (i,)).fetchone()[0]
            assert v == i * (k + 2), (i, v)
            if i % 10 == 0:
                with conn.transaction():
                    row = conn.execute(ITEM_SQL, (ident,)).fetchone()
                    assert row[1] == ident * 3
                    # psycopg really uses a server-side prepared statement by now.
                    assert server_has_statement(conn, "SELECT name, qty FROM items WHERE id = $1")
            # Explicitly prepared regardless of the threshold.
            v = conn.execute("SELECT %s::int + 1000", (i,), prepare=True).fetchone()[0]
            assert v == i + 1000
        # psycopg's own bookkeeping agrees that statements were prepared.
        assert len(conn._prepared._names) >= 2, conn._prepared._names


def executemany(k):
    with psycopg.connect(DSN, prepare_threshold=1, autocommit=True) as conn:
        conn.execute("DELETE FROM py_rows WHERE worker = %s", (k,))
        with conn.cursor() as cur:
            for batch in range(4):
                rows = [(k, batch * 100 + i, "v%d-%d" % (k, batch * 100 + i)) for i in range(100)]
                cur.executemany("INSERT INTO py_rows (worker, i, v) VALUES (%s, %s, %s)", rows)
            # executemany with RETURNING
            cur.executemany("UPDATE py_rows SET v = v || '!' WHERE worker = %s AND i = %s RETURNING i",
                            [(k, i) for i in range(0, 400, 40)], returning=True)
            got = []
            while True:
                got.append(cur.fetchone()[0])
                if not cur.nextset():
                    break
            assert got == list(range(0, 400, 40)), got
        n, s = conn.execute("SELECT count(*), sum(i) FROM py_rows WHERE worker = %s", (k,)).fetchone()
        assert (n, s) == (400, sum(range(400))), (n, s)
        n = conn.execute("SELECT count(*) FROM py_rows WHERE worker = %s AND v LIKE '%%!'", (k,)).fetchone()[0]
        assert n == 10, n
        # executemany inside a transaction, rolled back: nothing stays.
        try:
            with conn.transaction():
                conn.cursor().executemany("INSERT INTO py_rows (worker, i, v) VALUES (%s, %s, %s)",
                                          [(k, 1000 + i, "x") for i in range(50)])
                raise RuntimeError("rollback")
        except RuntimeError:
            pass
        n = conn.execute("SELECT count(*) FROM py_rows WHERE worker = %s", (k,)).fetchone()[0]
        assert n == 400, n


def pipeline(k):
    with psycopg.connect(DSN, prepare_threshold=0, autocommit=True) as conn:
        for it in range(20):
            with conn.pipeline():
                c1 = conn.execute("SELECT %s::int * 10", (it,))
                c2 = conn.execute(ITEM_SQL, (it + 1,))
                c3 = conn.execute("SELECT %s::text || '-' || %s::int", ("w%d" % k, it))
            assert c1.fetchone()[0] == it * 10
            assert c2.fetchone() == ("item-%d" % (it + 1), (it + 1) * 3)
            assert c3.fetchone()[0] == "w%d-%d" % (k, it)

            # An error in the middle of a pipeline: that query raises, the rest is not executed.
            before = conn.execute("SELECT count(*) FROM py_rows WHERE worker = %s", (100 + k,)).fetchone()[0]
            try:
                with conn.pipeline() as p:
                    ok = conn.execute("SELECT %s::int + 1", (it,))
                    p.sync()
                    assert ok.fetchone()[0] == it + 1
                    conn.execute("SELECT 100 / %s::int", (0,))
                    conn.execute("INSERT INTO py_rows (worker, i, v) VALUES (%s, %s, 'never')", (100 + k, it))
                raise AssertionError("no error from the pipeline")
            except psycopg.errors.DivisionByZero:
                pass
            after = conn.execute("SELECT count(*) FROM py_rows WHERE worker = %s", (100 + k,)).fetchone()[0]
            assert after == before, (before, after)
            # The connection is fine afterwards, prepared statements still work.
            assert conn.execute(ITEM_SQL, (5,)).fetchone() == ("item-5", 15)


def rotate(k):
    # More distinct queries than prepared_max: psycopg deallocates the oldest with SQL
    # "DEALLOCATE _pg3_n", as it does by default past 100 statements.
    with psycopg.connect(DSN, prepare_threshold=0, autocommit=True) as conn:
        conn.prepared_max = 3
        for rnd in range(3):
            for q in range(8):
                v = conn.execute("SELECT %%s::int + %d" % (q * 100), (rnd,)).fetchone()[0]
                assert v == rnd + q * 100, v
        assert len(conn._prepared._names) <= 3


SECTIONS = {"basic": basic, "executemany": executemany, "pipeline": pipeline, "rotate": rotate}


def main():
    section = sys.argv[1]
    assert psycopg.pq.version() >= 140000, "libpq without pipeline mode"
    run_threads(SECTIONS[section])
    print("psycopg %s OK %s (libpq %d, impl %s)" % (section, psycopg.__version__, psycopg.pq.version(),
                                                  psycopg.pq.__impl__))


if __name__ == "__main__":
    main()
