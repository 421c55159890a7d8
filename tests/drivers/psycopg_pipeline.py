#!/usr/bin/python3
"""psycopg 3 pipeline mode with prepare=True through pglane (issue 23, item 11).

Usage: psycopg_pipeline.py DSN CLIENTS TRANSACTIONS. Each client (a thread with its own
connection, autocommit) runs TRANSACTIONS times, in one pipeline (the first transaction of each
client one client after the other, as in the issue, then all clients at once):
BEGIN; UPDATE pp_acc ... (prepare=True); INSERT INTO pp_log ... (prepare=True); COMMIT.
Exits 0 when every transaction returned; 1 if any worker failed or was still waiting after 90 s.
Tables pp_acc(id int primary key, n int) with ids 1..CLIENTS and pp_log(id int, k int) are created
by tests/integration/test_differential.c, which then checks the totals.
"""
import sys
import threading

import psycopg

DSN, CLIENTS, TX = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def transaction(conn, k, i):
    with conn.pipeline():
        conn.execute("BEGIN")
        conn.execute("UPDATE pp_acc SET n = n + 1 WHERE id = %s", (k,), prepare=True)
        conn.execute("INSERT INTO pp_log (id, k) VALUES (%s, %s)", (k, i), prepare=True)
        conn.execute("COMMIT")


def worker(conn, k, errors, done):
    try:
        with conn:
            for i in range(1, TX):
                transaction(conn, k, i)
                done[k - 1] = i + 1
    except BaseException as e:  # noqa: BLE001 - reported below
        errors.append("client %d: %r" % (k, e))


def first(conns, k, errors, done):
    try:
        conns[k - 1] = psycopg.connect(DSN, autocommit=True)
        transaction(conns[k - 1], k, 0)
        done[k - 1] = 1
    except BaseException as e:  # noqa: BLE001 - reported below
        errors.append("client %d, first transaction: %r" % (k, e))


def main():
    errors, done, conns = [], [0] * CLIENTS, [None] * CLIENTS
    # The sequence first: one connection's transaction, then the same on the next one
    # (the statements are then prepared on the server that the next connection gets).
    for k in range(1, CLIENTS + 1):
        t = threading.Thread(target=first, args=(conns, k, errors, done), daemon=True)
        t.start()
        t.join(20)
        if t.is_alive() or errors:
            print("first transactions: client %d hung or failed: %s" % (k, errors))
            sys.stdout.flush()
            import os
            os._exit(1)
    threads = [threading.Thread(target=worker, args=(conns[k - 1], k, errors, done), daemon=True)
               for k in range(1, CLIENTS + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    hung = [k + 1 for k, t in enumerate(threads) if t.is_alive()]
    if hung or errors:
        print("hung clients: %s (transactions done: %s); errors: %s" % (hung, done, errors))
        sys.stdout.flush()
        import os
        os._exit(1)
    print("psycopg pipeline OK %s: %d clients x %d transactions" % (psycopg.__version__, CLIENTS, TX))


main()
