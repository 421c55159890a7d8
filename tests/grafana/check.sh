#!/usr/bin/env bash
# The Grafana dashboard (conf/grafana/pglane-dashboard.json) cannot drift from the code: every metric
# name its queries use (panel targets and template variables) is exported by a live pglane's /metrics,
# as a sample, after a workload that makes each family appear: transactions on two lanes, an error,
# a slow statement, and a lock wait the contention guard logs. Also: the file is valid JSON, every
# panel queries the dashboard's data source variable, and the check notices an unknown name.
# Own PostgreSQL 15 cluster and pglane on free loopback ports. Ends with "N passed, N failed".
# Usage: tests/grafana/check.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../bench/insightsnow/lib.sh
source "$repo/bench/insightsnow/lib.sh"
dash=$repo/conf/grafana/pglane-dashboard.json
bin=${PGLANE_BIN:-$repo/build/pglane}

# shellcheck source=../lib.sh
source "$repo/tests/lib.sh"

tmp=$(mktemp -d /tmp/pglane-grafana-check.XXXXXX)
pid=""; bg=""
cleanup() {
    [ -z "$bg" ] || kill "$bg" 2>/dev/null
    [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
    in_cluster_stop; rm -rf "$tmp"
}
trap cleanup EXIT

# ---- the dashboard's metric names
python3 - "$dash" >"$tmp/names" 2>"$tmp/json.err" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
exprs = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            exprs.append(t["expr"])
        walk(p.get("panels", []))
walk(d["panels"])
for v in d["templating"]["list"]:
    q = v.get("query")
    exprs.append(q.get("query", "") if isinstance(q, dict) else (q or ""))
bad = [p["title"] for p in d["panels"] if p["type"] != "row" and p.get("datasource", {}).get("uid") != "${datasource}"]
if bad:
    print("panels without the data source variable: " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
for n in sorted({n for e in exprs for n in re.findall(r"\bpglane_[a-zA-Z0-9_]+", e)}):
    print(n)
PY
rc=$?
check "the dashboard is valid JSON and its panels use the data source variable" '[ $rc = 0 ]' "$(cat "$tmp/json.err")"
check "the dashboard queries metrics ($(wc -l <"$tmp/names") names)" '[ "$(wc -l <"$tmp/names")" -ge 10 ]'
for want in pglane_lane_transaction_duration_seconds_bucket pglane_clients_waiting pglane_servers \
            pglane_clients_longest_wait_seconds \
            pglane_guard_actions_total pglane_errors_total pglane_lane_queue_wait_seconds_bucket; do
    check "the dashboard has a panel over $want" 'grep -qx "$want" "$tmp/names"'
done

# ---- a live pglane
in_cluster_init "$tmp" && in_cluster_start
check "a test PostgreSQL 15 runs" '[ -f "${IN_DATA:-/nonexistent}/postmaster.pid" ]' || finish
in_psql -d postgres -c "CREATE ROLE app LOGIN PASSWORD 'apppass'" -c "CREATE DATABASE appdb OWNER app" >/dev/null
in_psql -d appdb -c "CREATE TABLE t (id int); INSERT INTO t VALUES (1); ALTER TABLE t OWNER TO app" >/dev/null
port=$(in_free_port); mport=$(in_free_port)
while [ "$port" = "$IN_PORT" ] || [ "$mport" = "$IN_PORT" ] || [ "$mport" = "$port" ]; do
    port=$(in_free_port); mport=$(in_free_port)
done
printf '"app" "apppass"\n' >"$tmp/userlist.txt"; chmod 600 "$tmp/userlist.txt"
cat >"$tmp/pglane.ini" <<EOF
[pglane]
listen = 127.0.0.1:$port
metrics_listen = 127.0.0.1:$mport
auth_type = md5
auth_file = userlist.txt
default_lane = oltp
log_slower_than = 100ms

[server.pg]
host = 127.0.0.1
port = $IN_PORT

[lane.oltp]
server = pg
size = 4
protect = yes
guard = log
guard_wait = 100ms

[lane.analytics]
server = pg
size = 2
preemptible = yes

[route.reports]
application_name = report-*
lane = analytics
EOF
"$bin" "$tmp/pglane.ini" >"$tmp/pglane.log" 2>&1 &
pid=$!
q() { PGPASSWORD=apppass PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$port" -U app -d appdb -Atc "$@"; }
up=""
for _ in $(seq 1 100); do
    up=$(q "SELECT 1" 2>/dev/null) && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
check "pglane answers" '[ "$up" = 1 ]' "$(tail -5 "$tmp/pglane.log" | tr '\n' ' ')" || finish

# ---- a workload that makes every family appear
for i in 1 2 3; do q "SELECT count(*) FROM t" >/dev/null; done
PGAPPNAME=report-check q "SELECT count(*) FROM t" >/dev/null
q "SELECT 1/0" >/dev/null 2>&1                    # an error of class 22
q "SELECT pg_sleep(0.15)" >/dev/null              # slower than log_slower_than
# A lock wait of the protected lane behind the preemptible lane: the guard logs it.
PGAPPNAME=report-lock q "BEGIN; LOCK TABLE t; SELECT pg_sleep(2); COMMIT" >/dev/null 2>&1 &
bg=$!
in_psql -d appdb -c "SELECT 1" >/dev/null
for _ in $(seq 1 100); do
    [ "$(in_psql -d appdb -Atc "SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1 ] && break
    sleep 0.05
done
q "SELECT count(*) FROM t" >/dev/null 2>&1         # waits for the lock
wait "$bg"; bg=""
# GET /metrics over bash's /dev/tcp (pglane closes the connection after the answer); the body only.
scrape() {
    local r
    exec 3<>"/dev/tcp/127.0.0.1/$mport" || return 1
    printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&3
    r=$(cat <&3); exec 3<&-
    [[ "$r" == "HTTP/1.1 200"* ]] || return 1
    printf '%s\n' "${r#*$'\r\n\r\n'}"
}
metrics=""
for _ in $(seq 1 50); do
    metrics=$(scrape)
    grep -q '^pglane_guard_actions_total{' <<<"$metrics" && break
    sleep 0.2
done
printf '%s\n' "$metrics" >"$tmp/metrics"
check "the guard logged the lock wait (pglane_guard_actions_total has a sample)" \
    'grep -q "^pglane_guard_actions_total{.*action=\"logged\"" "$tmp/metrics"' "$(grep -i guard "$tmp/pglane.log" | head -3 | tr '\n' ' ')"

# ---- every name the dashboard queries is a sample of /metrics
exported() { grep -q "^$1[{ ]" "$tmp/metrics"; }
while read -r name; do
    check "/metrics exports $name" 'exported "$name"'
done <"$tmp/names"
check "the check notices a name /metrics does not export" '! exported pglane_no_such_metric_total'
finish
