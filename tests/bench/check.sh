#!/usr/bin/env bash
# Smoke test of bench/compare/run (make bench): one short round against a throwaway cluster at scale 1,
# select-only, 1 client, simple and extended, plus the driver loops when psycopg 3 / node-postgres are
# installed; the report goes to a temporary directory. Checks that every target of the matrix ran
# and relayed transactions without failures, the floor relay (bench/compare/floor.c) and pglane over
# PostgreSQL's unix socket included, and that their tables are in the report.
# Ends with "N passed, N failed"; exit status 1 if anything failed. Usage: tests/bench/check.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib.sh
source "$repo/tests/lib.sh"

tmp=$(mktemp -d /tmp/pglane-bench-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
report=$tmp/report.md

# 2 s per run: a 1 s run once logged no transaction at all for its first target (direct, c=1) on a
# machine running two other test suites.
BENCH_QUICK=1 BENCH_SCALE=1 BENCH_CLIENTS=1 BENCH_COMBOS="select:simple select:extended" BENCH_DURATION=2 \
    BENCH_IDLE=20 BENCH_STORM=20 BENCH_STORM_MAXSECS=3 BENCH_DRIVER_CLIENTS=1 BENCH_OUT=$report \
    timeout 600 "$repo/bench/compare/run" >"$tmp/run.out" 2>"$tmp/run.err"
rc=$?
check "bench/compare/run exits 0" '[ "$rc" = 0 ]' "exit $rc: $(tail -5 "$tmp/run.err" | tr '\n' ' ')"
check "the report is written" '[ -s "$report" ]'

# raw lines from the log: "r1 TARGET WORKLOAD MODE c=1 tps=N ... fail=N"
for t in direct pgbouncer pglane floor pglane_unix; do
    for m in simple extended; do
        line=$(grep -E "\] r1 $t +select +$m +c=1 " "$tmp/run.err" | head -1)
        tps=$(sed -n 's/.* tps=\([0-9]*\).*/\1/p' <<<"$line")
        fl=$(sed -n 's/.* fail=\([0-9]*\).*/\1/p' <<<"$line")
        check "$t select $m relays transactions" '[ "${tps:-0}" -gt 0 ] && [ "$fl" = 0 ]' "${line:-no run logged}"
    done
done
# pglane with cache_unnamed = on runs the -M extended combinations only
line=$(grep -E "\] r1 pglane_cu +select +extended +c=1 " "$tmp/run.err" | head -1)
tps=$(sed -n 's/.* tps=\([0-9]*\).*/\1/p' <<<"$line")
fl=$(sed -n 's/.* fail=\([0-9]*\).*/\1/p' <<<"$line")
check "pglane_cu select extended relays transactions" '[ "${tps:-0}" -gt 0 ] && [ "$fl" = 0 ]' "${line:-no run logged}"
check "pglane_cu does not run -M simple" '! grep -qE "\] r1 pglane_cu +select +simple " "$tmp/run.err"'
check "the cache_unnamed table is in the report" 'grep -q "^## pglane with cache_unnamed = on" "$report"'
check "floor's proxy CPU per transaction is measured" \
    'grep -qE "\] r1 floor +select +simple +c=1 .*cpu/txn=[0-9.]+us" "$tmp/run.err"' "$(grep ' floor ' "$tmp/run.err" | head -2)"
check "the floor / unix-socket table is in the report" \
    'grep -q "^## pglane against the floor relay" "$report" && grep -qE "^\| -S \| simple \| 1 \| [0-9]+ \| [0-9]+ \| [0-9]+ \|" "$report"'
if /usr/bin/python3 -c 'import psycopg' 2>/dev/null || [ -f "$repo/tests/drivers/node/node_modules/pg/package.json" ]; then
    check "the drivers table is in the report" 'grep -q "^## Drivers with their default unnamed statements" "$report"'
    for d in psycopg node; do
        grep -qE "\] r1 [a-z_]+ +$d " "$tmp/run.err" || continue
        n=$(grep -cE "\] r1 [a-z_]+ +$d +c=1 +tps=[1-9]" "$tmp/run.err")
        check "$d loop ran against all 6 targets" '[ "$n" = 6 ]' "$(grep -E " $d " "$tmp/run.err" | tr '\n' ' ')"
    done
fi
finish
