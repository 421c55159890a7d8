#!/usr/bin/env bash
# The embedded default (`make run`): a throwaway PostgreSQL 15 cluster under .run/ on its own port
# holding the InsightsNow database at a small scale (bench/insightsnow: schema, generated data and the
# database-side fixes), and pglane in the foreground on 127.0.0.1:6432 with conf/insightsnow.ini.
# Ctrl-C stops both. Never touches the machine's default cluster or port 5432.
# PGLANE_CONF=conf/pglane.ini serves the plain role pglane / database app instead; SCALE sets the
# InsightsNow scale (default 0.02: 40 accounts, 60,000 events).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
run=$top/.run
pgport=${PGLANE_PG_PORT:-6543}
bin=/usr/lib/postgresql/15/bin
conf=${PGLANE_CONF:-conf/insightsnow.ini}
scale=${SCALE:-0.02}
chmod 600 conf/userlist.txt

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

mkdir -p "$run"
[ "$(id -u)" = 0 ] && chown postgres "$run"
if [ ! -f "$run/pgdata/PG_VERSION" ]; then
    echo "make run: creating a throwaway PostgreSQL 15 cluster in .run/pgdata (port $pgport)"
    as_pg "$bin/initdb" -D "$run/pgdata" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$pgport") 2>/dev/null && ! [ -f "$run/pgdata/postmaster.pid" ]; then
    echo "make run: port $pgport is taken by something else; set PGLANE_PG_PORT" >&2
    exit 1
fi
as_pg "$bin/pg_ctl" -D "$run/pgdata" -l "$run/postgres.log" -w \
    -o "-p $pgport -k $run -c listen_addresses=127.0.0.1" start >/dev/null
stop_pg() { as_pg "$bin/pg_ctl" -D "$run/pgdata" -m fast stop >/dev/null 2>&1 || true; }
trap stop_pg EXIT

psql -q -h "$run" -p "$pgport" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
SELECT 'CREATE ROLE pglane LOGIN PASSWORD ''pglane'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pglane') \gexec
SELECT 'CREATE DATABASE app OWNER pglane'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'app') \gexec
SQL

in_psql() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$pgport" -U postgres "$@"; }
if [ -z "$(in_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'insightsnowdb'")" ]; then
    echo "make run: loading InsightsNow (SCALE=$scale) and applying its migrations"
    in_psql -d postgres -c "CREATE ROLE insightsuser LOGIN PASSWORD 'insightspass'" \
        -c "CREATE DATABASE insightsnowdb OWNER insightsuser"
    in_psql -d insightsnowdb -f bench/insightsnow/schema.sql >/dev/null
    in_psql -d insightsnowdb -v SCALE="$scale" -f bench/insightsnow/generate.sql >/dev/null
    for f in bench/insightsnow/migrations/[0-9]*.sql; do
        in_psql -d insightsnowdb -f "$f" >/dev/null
    done
fi

cat <<MSG
make run: PostgreSQL 15 on 127.0.0.1:$pgport, pglane on 127.0.0.1:6432 with $conf
  InsightsNow:  PGPASSWORD=insightspass psql -h 127.0.0.1 -p 6432 -U insightsuser insightsnowdb
  a report:     PGPASSWORD=insightspass PGAPPNAME=report-adhoc psql -h 127.0.0.1 -p 6432 -U insightsuser insightsnowdb
  console:      PGPASSWORD=pglane psql -h 127.0.0.1 -p 6432 -U pglane pglane   (then SHOW LANES;)
  pgbench:      PGPASSWORD=pglane pgbench -h 127.0.0.1 -p 6432 -U pglane -i app
  Ctrl-C stops both.
MSG
build/pglane "$conf"
