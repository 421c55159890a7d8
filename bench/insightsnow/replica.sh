# shellcheck shell=bash disable=SC2154,SC2153  # tmp, out, here, DB, PERIOD, PIDS, LPORT, MPORT come from run
# Configuration (d) of bench/insightsnow/run: a streaming replica of the run's cluster, the samplers
# of its replay lag, and what (d) records about conflicts. Sourced by run after the migrations (the
# replica starts from a base backup of the migrated, tuned primary). Uses run's tmp, out, DB, PIDS.

# replica_start: pg_basebackup -R -X stream of the primary into $tmp/replica, on its own free port
# and socket directory, hot_standby on; sets RDATA RSOCK RPORT RPGLOG.
replica_start() {
    RDATA=$tmp/replica; RSOCK=$tmp/rsock; RPGLOG=$tmp/replica.log
    mkdir -p "$RSOCK"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$RSOCK"; fi
    # wal_level replica and max_wal_senders 10 are PostgreSQL's defaults (neither conf changes them);
    # the base backup and the WAL stream come over the socket.
    echo "local replication postgres trust" | in_as_pg tee -a "$IN_DATA/pg_hba.conf" >/dev/null
    in_psql -qAtc "SELECT pg_reload_conf()" >/dev/null
    local t0; t0=$(date +%s.%N)
    in_as_pg "$IN_PGBIN/pg_basebackup" -h "$IN_SOCK" -p "$IN_PORT" -U postgres -D "$RDATA" -R -X stream -c fast \
        >"$tmp/basebackup.log" 2>&1 || { cat "$tmp/basebackup.log" >&2; return 1; }
    printf 'pg_basebackup %.1f s, %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$(du -sh "$RDATA" | cut -f1)" >"$out/replica_setup.txt"
    RPORT=$(in_free_port)
    # The primary's postgresql.conf (with postgresql.tuned.conf) came along; the replica's own lines
    # come last and win. A smaller shared_buffers: it shares this machine with the primary.
    in_as_pg tee -a "$RDATA/postgresql.conf" >/dev/null <<EOF

# ---- bench/insightsnow replica (configuration d) ----
port = $RPORT
unix_socket_directories = '$RSOCK'
hot_standby = on
shared_buffers = 2GB
include_if_exists = 'replica.conf'
EOF
    replica_settings on 30s
    in_as_pg "$IN_PGBIN/pg_ctl" -D "$RDATA" -l "$RPGLOG" -w -t 180 start >/dev/null \
        || { tail -20 "$RPGLOG" >&2; return 1; }
    in_log "replica on port $RPORT: in recovery $(r_psql -Atc 'SELECT pg_is_in_recovery()'), $(cat "$out/replica_setup.txt")"
}

# replica_settings HOT_STANDBY_FEEDBACK MAX_STANDBY_STREAMING_DELAY: the conflict trade-off; reloads
# a running replica (both are reloadable).
replica_settings() {
    printf 'hot_standby_feedback = %s\nmax_standby_streaming_delay = %s\n' "$1" "$2" \
        | in_as_pg tee "$RDATA/replica.conf" >/dev/null
    if [ -f "$RDATA/postmaster.pid" ]; then
        in_as_pg "$IN_PGBIN/pg_ctl" -D "$RDATA" reload >/dev/null
        for _ in $(seq 1 50); do
            [ "$(r_psql -Atc 'SHOW hot_standby_feedback')" = "$1" ] && break
            sleep 0.1
        done
    fi
}

replica_stop() { in_pgdata_stop "${RDATA:-}"; }

r_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$RSOCK" -p "$RPORT" -U postgres "$@"; }

# replica_wait_caught_up: until the replica has replayed the primary's current WAL position (60 s at most).
replica_wait_caught_up() {
    local lsn; lsn=$(in_psql -Atc "SELECT pg_current_wal_lsn()")
    for _ in $(seq 1 600); do
        [ "$(r_psql -Atc "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
        sleep 0.1
    done
    return 1
}

# replica_conflicts: the replica's recovery-conflict counters of the database, summed.
replica_conflicts() {
    r_psql -d "$DB" -Atc "SELECT confl_tablespace + confl_lock + confl_snapshot + confl_bufferpin + confl_deadlock
                          FROM pg_stat_database_conflicts WHERE datname = current_database()"
}

# lag_samplers_start DIR: replay lag every 0.5 s, seen from the primary (pg_stat_replication), from the
# replica (time since the last replayed commit, 0 when everything received is replayed) and from
# pglane (SHOW HEALTH lag_ms / lag_bytes of replica1, every 1 s). lag_samplers_stop stops them by PID.
lag_samplers_start() {
    local dir=$1
    echo 'at,replay_lag_s,lag_bytes' >"$dir/lag_primary.csv"
    { echo '\pset format csv'; echo '\pset tuples_only on'
      echo "SELECT extract(epoch FROM clock_timestamp()), coalesce(extract(epoch FROM replay_lag), 0),
                   pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication"
      echo '\watch 0.5'; } >"$dir/lag_primary.sql"
    psql -X -q -h "$IN_SOCK" -p "$IN_PORT" -U postgres -d postgres -f "$dir/lag_primary.sql" >>"$dir/lag_primary.csv" 2>/dev/null &
    LAG_PIDS=($!)
    echo 'at,replay_lag_s' >"$dir/lag_replica.csv"
    { echo '\pset format csv'; echo '\pset tuples_only on'
      echo "SELECT extract(epoch FROM clock_timestamp()),
                   CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                        ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) END"
      echo '\watch 0.5'; } >"$dir/lag_replica.sql"
    psql -X -q -h "$RSOCK" -p "$RPORT" -U postgres -d postgres -f "$dir/lag_replica.sql" >>"$dir/lag_replica.csv" 2>/dev/null &
    LAG_PIDS+=($!)
    (
        while :; do
            line=$(PGPASSWORD=insightspass psql -X -A -F '|' -h 127.0.0.1 -p "$LPORT" -U insightsuser pglane \
                       -c 'SHOW HEALTH' 2>/dev/null) || true
            printf '%s\n' "$line" | awk -F'|' -v t="$(date +%s.%N)" '
                NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                c["server"] && $c["server"] == "replica1" { print t "," $c["lag_ms"] "," $c["lag_bytes"] "," $c["state"] "," $c["conflicts"] }'
            sleep 1
        done
    ) >"$dir/lag_pglane.csv" &
    LAG_PIDS+=($!)
    PIDS+=("${LAG_PIDS[@]}")
}

lag_samplers_stop() {
    local p
    for p in "${LAG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${LAG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    return 0
}

# replica_config NAME HSF DELAY: one configuration on the replica: settings, pglane (analytics lane on
# replica1 with the primary for its writes, replica_fallback = queue), the run with the lag samplers,
# then what the replica and pglane counted, and the report checked on the replica once caught up.
replica_config() {
    local name=$1 hsf=$2 delay=$3 dir=$out/$1
    replica_settings "$hsf" "$delay"
    replica_wait_caught_up || in_log "replica not caught up before ($name)"
    local c0; c0=$(replica_conflicts)
    r_psql -d "$DB" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null 2>&1 || true
    PRIMARY_ROLE="role = primary" EXTRA_SERVERS="[server.replica1]
host = 127.0.0.1
port = $RPORT
role = replica
" ANALYTICS_SERVER="replica1, primary" ANALYTICS_EXTRA="max_replica_lag = 5s
replica_fallback = queue
" ANALYTICS_SIZE=$D_ANALYTICS_SIZE pglane_up "$name" "${GUARD:-log}" 250ms ""
    mkdir -p "$dir"
    local lag_dir=$tmp/lag-$name; mkdir -p "$lag_dir"
    lag_samplers_start "$lag_dir"
    RETRY_S=${D_RETRY_S:-} run_config "$name" 127.0.0.1 "$LPORT" oltp_upsert_after.sql insights_report \
        report_monthly_replica.sql report_refresh_after.sql
    lag_samplers_stop
    cp "$lag_dir"/*.csv "$dir/"
    PGPASSWORD=insightspass psql -X -h 127.0.0.1 -p "$LPORT" -U insightsuser pglane \
        -c 'SHOW LANE SERVERS' -c 'SHOW HEALTH' >"$out/${name}_servers.txt" 2>&1 || true
    local pconf; pconf=$(PGPASSWORD=insightspass psql -X -A -F '|' -h 127.0.0.1 -p "$LPORT" -U insightsuser pglane \
        -c 'SHOW LANE SERVERS' 2>/dev/null | awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
            $c["lane"] == "analytics" && $c["server"] == "replica1" { print $c["conflicts"] }')
    curl -s "http://127.0.0.1:$MPORT/metrics" | grep -E '^pglane_(lane_replica_conflicts_total|replica_conflicts_total|lane_server_transactions_total|replica_lag)' \
        >"$out/${name}_metrics.txt" || true
    pglane_down "$name"
    replica_wait_caught_up || in_log "replica not caught up after ($name)"
    local c1; c1=$(replica_conflicts)
    # The report as the replica has it once caught up: its rows, and the aggregate from its base tables.
    r_psql -d "$DB" -v period="$PERIOD" -A -F '|' -t -f "$here/report_check.sql" >"$dir/accuracy_replica.txt"
    r_psql -d "$DB" -c "
        SELECT calls, round(total_exec_time::numeric / 1000, 2) AS total_s, round(max_exec_time::numeric, 1) AS max_ms,
               rows, left(regexp_replace(query, '\s+', ' ', 'g'), 140) AS query
        FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 8" \
        >"$dir/pg_stat_statements_replica.txt" 2>&1 || true
    (cd "$dir" && grep -E 'conflict with recovery|ERROR' report[12].log) >"$dir/report_conflicts.txt" || true
    {
        echo "hsf|$hsf"; echo "delay|$delay"
        echo "pconf|${pconf:-?}"; echo "rconf|$((c1 - c0))"
        echo "cancelled|$(cat "$dir"/report[12].log | grep -c 'conflict with recovery' || true)"
        echo "standby|$(grep -ho 'read on a standby: [a-z]*' "$dir/report1.log" | sed 's/.*: //' | tr '\n' ' ' | sed 's/ $//')"
        IFS="|" read -r rr _ rh _ acc <"$dir/accuracy_replica.txt"
        echo "replica_check|$rr / $rh, equals its base tables: $acc"
    } >"$dir/replica_facts.txt"
}
