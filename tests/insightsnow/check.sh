#!/usr/bin/env bash
# Checks of bench/insightsnow that can break silently, against a throwaway PostgreSQL 15 cluster at a
# tiny scale (own temporary directory, loopback, a free port, never 5432):
#   - the migrations apply, and apply a second time, without error;
#   - the partitioned events hold exactly the rows of the original table, and event_keys one key per event;
#   - the striped counters equal a count over events, after the migration and after concurrent upserts
#     that retry keys; the old per-account counter was exact too before the migration;
#   - the open-month materialized view after REFRESH ... CONCURRENTLY equals its defining query, and
#     the dashboard_daily view (closed + open) equals the aggregate over all events;
#   - the rewritten report produces the rows the original report produced, equal to the base tables;
#   - creating future partitions is idempotent.
# Ends with "N passed, N failed"; exit status 1 if anything failed. Usage: tests/insightsnow/check.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
b=$repo/bench/insightsnow
# shellcheck source=../../bench/insightsnow/lib.sh
source "$b/lib.sh"

# shellcheck source=../lib.sh
source "$repo/tests/lib.sh"
# check NAME SQL: passes when the query returns exactly 't'
check() {
    local r; r=$(in_psql -d insightsnowdb -Atc "$2" 2>&1)
    if [ "$r" = t ]; then ok "$1"; else fail "$1" "$(echo "$r" | head -3 | tr '\n' ' ')"; fi
}

tmp=$(mktemp -d /tmp/pglane-insightsnow-check.XXXXXX)
cleanup() { in_cluster_stop; rm -rf "$tmp"; }
trap cleanup EXIT
export PGPASSFILE=$tmp/pgpass
printf '127.0.0.1:*:*:insightsuser:insightspass\n127.0.0.1:*:*:insights_report:reportpass\n' >"$PGPASSFILE"
chmod 600 "$PGPASSFILE"

in_cluster_init "$tmp" || { echo "0 passed, 1 failed"; exit 1; }
echo "timezone = 'UTC'" >>"$IN_DATA/postgresql.conf"
started=0
for _ in 1 2 3; do
    if in_cluster_start; then started=1; break; fi
    old=$IN_PORT; IN_PORT=$(in_free_port); sed -i "s/^port = $old\$/port = $IN_PORT/" "$IN_DATA/postgresql.conf"
done
[ "$started" = 1 ] || { tail "$IN_PGLOG"; echo "0 passed, 1 failed"; exit 1; }

app() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$IN_PORT" -d insightsnowdb "$@"; }
bench() {   # bench USER SCRIPT CLIENTS TX : concurrent upserts over 10 accounts and 60 keys (many retries)
    PGAPPNAME=oltp-check pgbench -n -M simple -h 127.0.0.1 -p "$IN_PORT" -U "$1" -c "$3" -j 2 -t "$4" \
        -D naccounts=10 -D keyspace=60 -f "$b/workloads/$2" insightsnowdb >"$tmp/pgbench.out" 2>&1
}

in_psql -c "CREATE ROLE insightsuser LOGIN PASSWORD 'insightspass'" -c "CREATE DATABASE insightsnowdb OWNER insightsuser" >/dev/null
in_psql -d insightsnowdb -f "$b/schema.sql" >/dev/null
in_psql -d insightsnowdb -v SCALE=0.005 -f "$b/generate.sql" >/dev/null    # 10 accounts, 15,000 events

# ---- before: the original counter is exact, the original report runs
if bench insightsuser oltp_upsert.sql 4 100; then ok "original event upserts run"; else fail "original event upserts run" "$(tail -3 "$tmp/pgbench.out")"; fi
check "original counter equals a count over events" "
    SELECT bool_and(a.event_count = coalesce(c.n, 0)) FROM accounts a
    LEFT JOIN (SELECT account_id, count(*) n FROM events GROUP BY 1) c ON c.account_id = a.id"
app -U insightsuser -v period=2025-06-01 -f "$b/workloads/report_monthly.sql" >/dev/null 2>"$tmp/err" \
    && app -U insightsuser -v period=2025-06-01 -f "$b/workloads/report_refresh.sql" >/dev/null 2>>"$tmp/err" \
    && ok "original report run completes" || fail "original report run completes" "$(head -2 "$tmp/err")"
before_hash=$(in_psql -d insightsnowdb -v period=2025-06-01 -At -F '|' -f "$b/report_check.sql" | cut -d'|' -f3)
in_psql -d insightsnowdb -qc "CREATE SCHEMA chk; CREATE TABLE chk.events_before AS SELECT * FROM events"

# ---- migrations, twice
for pass in 1 2; do
    err=""
    for f in "$b"/migrations/[0-9]*.sql; do
        if ! in_psql -d insightsnowdb -f "$f" >"$tmp/mig.out" 2>&1; then err="$(basename "$f"): $(grep -m1 ERROR "$tmp/mig.out")"; break; fi
    done
    if [ -z "$err" ]; then ok "migrations apply (pass $pass)"; else fail "migrations apply (pass $pass)" "$err"; fi
done

check "events is partitioned by range, with a default partition" "
    SELECT (SELECT relkind FROM pg_class WHERE oid = 'events'::regclass) = 'p'
       AND EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'events'::regclass AND partstrat = 'r')
       AND to_regclass('events_default') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM events_default)"
check "partitioned events hold exactly the original rows" "
    SELECT (SELECT count(*) FROM events) = (SELECT count(*) FROM chk.events_before)
       AND NOT EXISTS (SELECT * FROM chk.events_before EXCEPT ALL SELECT * FROM events)
       AND NOT EXISTS (SELECT * FROM events EXCEPT ALL SELECT * FROM chk.events_before)"
check "every row sits in its month's partition" "
    SELECT bool_and(tableoid::regclass::text = 'events_y' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY\"m\"MM'))
    FROM events"
check "event_keys holds one key per event, with its occurred_at" "
    SELECT (SELECT count(*) FROM event_keys) = (SELECT count(*) FROM events)
       AND NOT EXISTS (SELECT 1 FROM events e LEFT JOIN event_keys k USING (account_id, idempotency_key)
                       WHERE k.occurred_at IS DISTINCT FROM e.occurred_at)"
counters_sql="
    SELECT bool_and(coalesce(t.events, -1) = coalesce(c.n, 0)) FROM accounts a
    LEFT JOIN account_event_totals t ON t.account_id = a.id
    LEFT JOIN (SELECT account_id, count(*) n FROM events GROUP BY 1) c ON c.account_id = a.id"
check "striped counters equal a count over events after the migration" "$counters_sql"

# ---- after: concurrent upserts with retried keys
if bench insightsuser oltp_upsert_after.sql 6 150; then ok "rewritten event upserts run (900, 6 clients)"; else fail "rewritten event upserts run" "$(tail -3 "$tmp/pgbench.out")"; fi
check "striped counters equal a count over events after concurrent upserts" "$counters_sql"
check "one event per (account_id, idempotency_key), matching event_keys" "
    SELECT NOT EXISTS (SELECT 1 FROM events GROUP BY account_id, idempotency_key HAVING count(*) > 1)
       AND (SELECT count(*) FROM event_keys) = (SELECT count(*) FROM events)"

# ---- the dashboards' views
if app -U insights_report -c "REFRESH MATERIALIZED VIEW CONCURRENTLY dashboard_daily_open" >/dev/null 2>"$tmp/err"; then
    ok "REFRESH MATERIALIZED VIEW CONCURRENTLY as insights_report"
else fail "REFRESH MATERIALIZED VIEW CONCURRENTLY as insights_report" "$(head -1 "$tmp/err")"; fi
def=$(in_psql -d insightsnowdb -Atc "SELECT rtrim(pg_get_viewdef('dashboard_daily_open'::regclass), '; ')")
check "open-month view after concurrent refresh equals its defining query" "
    SELECT NOT EXISTS (SELECT * FROM dashboard_daily_open EXCEPT ALL ($def))
       AND NOT EXISTS (($def) EXCEPT ALL SELECT * FROM dashboard_daily_open)
       AND (SELECT count(*) FROM dashboard_daily_open) > 0"
check "dashboard_daily (closed + open) equals the aggregate over all events" "
    SELECT NOT EXISTS (SELECT * FROM dashboard_daily EXCEPT ALL SELECT * FROM dashboard_days('-infinity', 'infinity'))
       AND NOT EXISTS (SELECT * FROM dashboard_days('-infinity', 'infinity') EXCEPT ALL SELECT * FROM dashboard_daily)"

# ---- the rewritten report
app -U insights_report -v period=2025-06-01 -f "$b/workloads/report_monthly_after.sql" >/dev/null 2>"$tmp/err" \
    && app -U insights_report -v period=2025-06-01 -f "$b/workloads/report_refresh_after.sql" >/dev/null 2>>"$tmp/err" \
    && ok "rewritten report run completes as insights_report" || fail "rewritten report run completes" "$(grep -m1 ERROR "$tmp/err")"
IFS='|' read -r _ _ after_hash _ accurate < <(in_psql -d insightsnowdb -v period=2025-06-01 -At -F '|' -f "$b/report_check.sql")
[ "$accurate" = t ] && ok "report equals the aggregate from base tables" || fail "report equals the aggregate from base tables"
[ -n "$before_hash" ] && [ "$before_hash" = "$after_hash" ] && ok "rewritten report identical to the original report" \
    || fail "rewritten report identical to the original report" "$before_hash vs $after_hash"

# ---- future partitions
check "events_ensure_partitions is idempotent" "
    SELECT events_ensure_partitions(date '2031-01-01', date '2031-03-01') = 3
       AND events_ensure_partitions(date '2031-01-01', date '2031-03-01') = 0
       AND to_regclass('events_y2031m02') IS NOT NULL"
check "the report role cannot run DDL on events" "
    SELECT NOT has_table_privilege('insights_report', 'events', 'INSERT')
       AND NOT pg_has_role('insights_report', 'insightsuser', 'MEMBER')"

finish
