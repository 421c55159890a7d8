#!/usr/bin/env bash
# The embedded default (`make run`): a throwaway PostgreSQL 15 cluster on its own port holding the
# InsightsNow database at a small scale (bench/insightsnow: schema, generated data and the
# database-side fixes), and pglane in the foreground on 127.0.0.1:6432 with conf/insightsnow.ini.
# Ctrl-C stops both. Never touches the machine's default cluster or port 5432.
#
# Where the cluster lives: .run/ in the checkout when the user that runs PostgreSQL can reach it
# (as root that is `postgres`, since initdb refuses root; otherwise the user running this script).
# When it cannot (a checkout in root's home or another private directory) or the socket path would be
# too long, in /var/tmp/pglane-run-<user>-<hash of the checkout path>/, mode 0700, owned by that user,
# so that the next `make run` from the same checkout finds the cluster and its data again.
#
# Knobs (environment):
#   PGLANE_CONF=conf/pglane.ini  serve the plain role pglane / database app instead of InsightsNow
#   SCALE=0.02                   InsightsNow scale (0.02: 40 accounts, 60,000 events)
#   PGLANE_PG_PORT=6543          the cluster's TCP port on 127.0.0.1
#   PGLANE_LISTEN=host:port      pglane's client listener (default: the config's, 127.0.0.1:6432)
#   PGLANE_METRICS_LISTEN=h:p    pglane's /metrics listener (default: the config's)
# When PGLANE_PG_PORT, PGLANE_LISTEN or PGLANE_METRICS_LISTEN is set, pglane runs with a copy of the
# config carrying those values (deleted on exit); otherwise with the config itself, so that editing
# it and sending SIGHUP reloads it.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
pgport=${PGLANE_PG_PORT:-6543}
bin=/usr/lib/postgresql/15/bin
conf=${PGLANE_CONF:-conf/insightsnow.ini}
scale=${SCALE:-0.02}
chmod 600 conf/userlist.txt

if [ "$(id -u)" = 0 ]; then pguser=postgres; else pguser=$(id -un); fi
# As root, PostgreSQL's tools run as postgres, from / (the checkout may be closed to postgres); every
# path given to them is absolute.
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# PostgreSQL's socket path (DIR/.s.PGSQL.PORT.lock) must fit in sun_path (107 bytes).
sock_fits() { [ $((${#1} + ${#pgport} + 15)) -le 107 ]; }

# The cluster's directory: .run/ when reachable, else a private directory under /var/tmp.
run=$top/.run
why=""
if ! sock_fits "$run"; then
    why="the socket path under $top would be too long"
elif [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$top"; then
    why="user postgres, which runs PostgreSQL, cannot enter $top"
fi
if [ -n "$why" ]; then
    run=/var/tmp/pglane-run-$(id -un)-$(printf '%s' "$top" | sha256sum | cut -c1-12)
    [ -e "$run" ] || as_pg mkdir -m 700 "$run" 2>/dev/null || true
    # /var/tmp is shared: use only a real directory that the cluster's user owns and nobody else may enter.
    if [ -L "$run" ] || [ ! -d "$run" ] || [ "$(stat -c %U "$run")" != "$pguser" ] ||
       [ "$(stat -c %a "$run")" != 700 ]; then
        echo "make run: $run is not a directory of mode 0700 owned by $pguser; remove it and retry" >&2
        exit 1
    fi
else
    mkdir -p "$run"
    [ "$(id -u)" = 0 ] && chown postgres "$run"
fi

if [ ! -f "$run/pgdata/PG_VERSION" ]; then
    echo "make run: creating a throwaway PostgreSQL 15 cluster in $run/pgdata (port $pgport)"
    [ -z "$why" ] || echo "make run: (not in the checkout: $why)"
    as_pg "$bin/initdb" -D "$run/pgdata" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
else
    echo "make run: reusing the PostgreSQL 15 cluster in $run/pgdata (port $pgport)"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$pgport") 2>/dev/null && ! [ -f "$run/pgdata/postmaster.pid" ]; then
    echo "make run: port $pgport is taken by something else; set PGLANE_PG_PORT" >&2
    exit 1
fi
listen=${PGLANE_LISTEN:-$(sed -n 's/^[ \t]*listen[ \t]*=[ \t]*\([^ \t,;]*\).*/\1/p' "$conf" | head -1)}
listen=${listen:-127.0.0.1:6432}
lhost=${listen%:*}; lport=${listen##*:}
[ "$lhost" != "*" ] || lhost=127.0.0.1
if (exec 3<>"/dev/tcp/$lhost/$lport") 2>/dev/null; then
    echo "make run: $listen is taken by something else (another pglane?); set PGLANE_LISTEN=127.0.0.1:PORT" >&2
    exit 1
fi
if ! as_pg "$bin/pg_ctl" -D "$run/pgdata" -l "$run/postgres.log" -w \
    -o "-p $pgport -k $run -c listen_addresses=127.0.0.1" start >/dev/null; then
    echo "make run: PostgreSQL did not start; the end of $run/postgres.log:" >&2
    as_pg tail -n 15 "$run/postgres.log" >&2 || true
    exit 1
fi
gen=""
cleanup() {
    as_pg "$bin/pg_ctl" -D "$run/pgdata" -m fast stop >/dev/null 2>&1 || true
    [ -z "$gen" ] || rm -f "$gen"
}
trap cleanup EXIT

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

# The config pglane runs with: the file itself, or a copy with the overridden addresses and its
# relative paths made absolute (they are relative to the ini file's folder).
run_conf=$conf
if [ -n "${PGLANE_PG_PORT:-}${PGLANE_LISTEN:-}${PGLANE_METRICS_LISTEN:-}" ]; then
    gen=$(mktemp "${TMPDIR:-/tmp}/pglane-run.XXXXXX.ini")
    awk -v listen="${PGLANE_LISTEN:-}" -v metrics="${PGLANE_METRICS_LISTEN:-}" -v pgport="$pgport" \
        -v dir="$(cd "$(dirname "$conf")" && pwd)" '
        /^[ \t]*\[/ { sect = $0; sub(/^[ \t]*\[/, "", sect); sub(/\].*/, "", sect) }
        sect == "pglane" && listen != "" && /^[ \t]*listen[ \t]*=/ { print "listen = " listen; next }
        sect == "pglane" && metrics != "" && /^[ \t]*metrics_listen[ \t]*=/ { print "metrics_listen = " metrics; next }
        sect ~ /^server\./ && /^[ \t]*port[ \t]*=/ { print "port = " pgport; next }
        /^[ \t]*(auth_file|tls_cert_file|tls_key_file|tls_ca_file|server_tls_ca_file)[ \t]*=/ {
            key = $0; sub(/[ \t]*=.*/, "", key); sub(/^[ \t]*/, "", key)
            val = $0; sub(/^[^=]*=[ \t]*/, "", val); sub(/[ \t]+;.*/, "", val); sub(/[ \t]+$/, "", val)
            if (val !~ /^\//) val = dir "/" val
            print key " = " val; next
        }
        { print }' "$conf" >"$gen"
    run_conf=$gen
fi

cat <<MSG
make run: PostgreSQL 15 on 127.0.0.1:$pgport (data in $run/pgdata), pglane on $listen with $conf${gen:+ (addresses overridden in $gen)}
  InsightsNow:  PGPASSWORD=insightspass psql -h $lhost -p $lport -U insightsuser insightsnowdb
  a report:     PGPASSWORD=insightspass PGAPPNAME=report-adhoc psql -h $lhost -p $lport -U insightsuser insightsnowdb
  console:      PGPASSWORD=pglane psql -h $lhost -p $lport -U pglane pglane   (then SHOW LANES;)
  pgbench:      PGPASSWORD=pglane pgbench -h $lhost -p $lport -U pglane -i app
  Ctrl-C stops both.
MSG
build/pglane "$run_conf"
