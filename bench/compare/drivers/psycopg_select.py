# bench/compare: psycopg 3 select-only loop, one asyncio connection per client, for DURATION seconds.
# Each statement goes out as an unnamed extended-protocol statement (prepare_threshold=None: what
# psycopg sends below its threshold, i.e. for every statement it has not yet seen 5 times).
# Usage: python3 psycopg_select.py CONNINFO CLIENTS DURATION  -> prints "tps=N txns=N errors=N"
import asyncio, random, sys, time
import psycopg

async def worker(conninfo, stop_at, counts):
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True, prepare_threshold=None) as conn:
        n = 0
        rnd = random.Random()
        while time.monotonic() < stop_at:
            try:
                cur = await conn.execute("SELECT abalance FROM pgbench_accounts WHERE aid = %s",
                                         (rnd.randint(1, 1000000),))
                await cur.fetchone()
                n += 1
            except psycopg.Error:
                counts["errors"] += 1
        counts["txns"] += n

async def main():
    conninfo, clients, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    counts = {"txns": 0, "errors": 0}
    t0 = time.monotonic()
    stop_at = t0 + duration
    await asyncio.gather(*(worker(conninfo, stop_at, counts) for _ in range(clients)))
    secs = time.monotonic() - t0
    print(f"tps={counts['txns'] / secs:.1f} txns={counts['txns']} errors={counts['errors']}")

asyncio.run(main())
