# Shared helpers for bench/insightsnow/run and tests/insightsnow/check.sh: a throwaway PostgreSQL 15
# cluster on a free loopback port, never 5432, stopped by its own data directory.
# Source it; it defines functions and reads/sets IN_* variables.

IN_PGBIN=${IN_PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$IN_PGBIN/initdb" ] || IN_PGBIN=$(dirname "$(command -v initdb 2>/dev/null || echo /usr/bin/initdb)")
IN_DIR_BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

in_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Run a server-side command as the postgres OS user when we are root (initdb refuses root).
in_as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A TCP port on 127.0.0.1 that nothing listens on right now (never 5432).
in_free_port() {
    local p low=32768
    # Below the kernel's ephemeral range: a port picked now and bound later (a second `make run` on
    # the same ports) cannot meanwhile become the source port of some outgoing connection.
    read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
    [ "$low" -gt 21000 ] 2>/dev/null || low=32768
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % (low - 20000)))
        [ "$p" = 5432 ] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

# in_cluster_init TMPDIR: initdb into TMPDIR/data with a base config; sets IN_DATA, IN_SOCK, IN_PORT.
in_cluster_init() {
    local tmp=$1
    IN_DATA=$tmp/data; IN_SOCK=$tmp/sock; IN_PGLOG=$tmp/postgres.log
    mkdir -p "$IN_SOCK"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$tmp"; chmod 755 "$tmp"; fi
    in_as_pg "$IN_PGBIN/initdb" -D "$IN_DATA" -U postgres -E UTF8 --locale=C -A trust >"$tmp/initdb.log" 2>&1 \
        || { cat "$tmp/initdb.log" >&2; return 1; }
    IN_PORT=$(in_free_port) || return 1
    # Loopback only; the local socket (superuser tooling: sampler, loader) trusts, TCP asks for SCRAM.
    in_as_pg tee "$IN_DATA/pg_hba.conf" >/dev/null <<EOF
local all all trust
host  all postgres 127.0.0.1/32 trust
host  all all 127.0.0.1/32 scram-sha-256
EOF
    # Base settings shared by every configuration: where to listen, and observability.
    in_as_pg tee -a "$IN_DATA/postgresql.conf" >/dev/null <<EOF

# ---- bench/insightsnow base (every configuration) ----
listen_addresses = '127.0.0.1'
port = $IN_PORT
unix_socket_directories = '$IN_SOCK'
max_connections = 100
fsync = on
shared_preload_libraries = 'pg_stat_statements,auto_explain'
pg_stat_statements.max = 2000
pg_stat_statements.track = top
auto_explain.log_min_duration = '1s'
auto_explain.log_analyze = on
auto_explain.log_buffers = on
auto_explain.log_timing = off
auto_explain.log_nested_statements = on
log_lock_waits = on            # "still waiting ... after N ms" with the holders' PIDs
deadlock_timeout = '100ms'     # so log_lock_waits reports every wait longer than 100 ms
log_line_prefix = '%m [%p] %u %a: '
log_min_duration_statement = -1
include_if_exists = 'insightsnow.conf'
EOF
}

in_cluster_start() {
    in_as_pg "$IN_PGBIN/pg_ctl" -D "$IN_DATA" -l "$IN_PGLOG" -w -t 60 start >/dev/null
}

in_cluster_restart() {
    in_as_pg "$IN_PGBIN/pg_ctl" -D "$IN_DATA" -l "$IN_PGLOG" -w -t 60 -m fast restart >/dev/null
}

# in_pgdata_stop DIR: stops the cluster of data directory DIR, if it runs (fast, then its postmaster's
# PID from postmaster.pid if pg_ctl fails).
in_pgdata_stop() {
    [ -n "${1:-}" ] && [ -f "$1/postmaster.pid" ] || return 0
    in_as_pg "$IN_PGBIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 || {
        local pid; pid=$(head -1 "$1/postmaster.pid" 2>/dev/null)
        [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null
    }
}

in_cluster_stop() { in_pgdata_stop "${IN_DATA:-}"; }

# Superuser psql over the cluster's own socket.
in_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$IN_SOCK" -p "$IN_PORT" -U postgres "$@"; }
