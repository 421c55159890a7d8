#!/usr/bin/env bash
# Turns one run's raw data (pgbench per-transaction logs, blocking samples, server log slices,
# report checks) into the markdown comparison and the latency plot. Called by ./run at the end; it
# loads everything into a scratch database "benchstats" of the run's own cluster (IN_SOCK, IN_PORT
# exported by run) and computes the numbers in SQL.
# Usage: analyze.sh OUT_DIR MD SCALE RATE CLIENTS ALONE WITH NACC NEV LOAD_S ANALYTICS_SIZE PERIOD T_BEGIN
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
out=$1 md=$2 scale=$3 rate=$4 clients=$5 alone=$6 with=$7 nacc=$8 nev=$9 load_s=${10} asize=${11} period=${12} t_begin=${13}
configs=()
for c in a ap b c cb d dx; do [ -f "$out/$c/timeline.txt" ] && configs+=("$c"); done

S() { in_psql -d benchstats "$@"; }
in_psql -qc "DROP DATABASE IF EXISTS benchstats" -c "CREATE DATABASE benchstats" >/dev/null
S -q <<'EOF'
CREATE TABLE tx (config text, client int, txno int, lat_us bigint, failed bool, script int,
                 done_epoch numeric, lag_us bigint);
CREATE TABLE timeline (config text, start_at timestamptz, report_start timestamptz, report_end timestamptz,
                       end_at timestamptz, pgbench_rc int);
CREATE TABLE blocking (config text, sampled_at timestamptz, waiting_pid int, waiting_app text, waiting_user text,
                       wait_s numeric, lock_type text, wanted_mode text, relation text, blocking_pid int,
                       blocking_app text, blocking_user text, blocking_state text, blocking_lock text,
                       blocking_xact_s numeric, waiting_query text, blocking_query text);
CREATE TABLE logwait (config text, app text, kind text, ms numeric, what text);
CREATE TABLE facts (config text, key text, value text);
-- (d): replay lag samples from the primary (pg_stat_replication), the replica, and pglane's SHOW HEALTH
CREATE TABLE lag_p (config text, at float8, lag_s float8, lag_bytes numeric);
CREATE TABLE lag_r (config text, at float8, lag_s float8);
CREATE TABLE lag_g (config text, at float8, lag_ms float8, lag_bytes numeric, state text, conflicts bigint);
EOF

for c in "${configs[@]}"; do
    d=$out/$c
    # pgbench 15 log: client txno latency_us|failed|skipped script epoch usec [lag_us]
    cat "$d"/tx.[0-9]* 2>/dev/null | awk -v c="$c" '
        { failed = ($3 == "failed" || $3 == "skipped") ? "t" : "f"; lat = (failed == "t") ? "" : $3;
          printf "%s,%s,%s,%s,%s,%s,%s.%06d,%s\n", c, $1, $2, lat, failed, $4, $5, $6, $7 }' >"$d/tx.csv"
    S -qc "\copy tx (config, client, txno, lat_us, failed, script, done_epoch, lag_us) FROM '$d/tx.csv' WITH (FORMAT csv)"
    read -r _ st rs re en rc <"$d/timeline.txt"
    S -qc "INSERT INTO timeline VALUES ('$c', to_timestamp($st), to_timestamp($rs), to_timestamp($re), to_timestamp($en), $rc)"
    S -qc "CREATE TABLE b0 (LIKE blocking); ALTER TABLE b0 DROP COLUMN config" \
      -c "\copy b0 FROM '$d/blocking.csv' WITH (FORMAT csv, HEADER true)" \
      -c "INSERT INTO blocking SELECT '$c', b0.* FROM b0; DROP TABLE b0"
    # log_lock_waits: "... insightsuser oltp-api: LOG:  process 123 acquired ShareLock on transaction 9 after 2345.678 ms"
    sed -nE 's/^.* \[[0-9]+\] [^ ]* ([^:]*): LOG:  process [0-9]+ (acquired|still waiting for) ([A-Za-z]+) on (.*) after ([0-9.]+) ms.*$/\1|\2|\5|\3 on \4/p' \
        "$d/postgres.log" | awk -F'|' -v c="$c" 'BEGIN{OFS="|"} {print c, $1, $2, $3, $4}' >"$d/logwaits.psv" || true
    grep -E ': ERROR:  canceling statement due to (lock|statement) timeout' "$d/postgres.log" \
        | sed -nE 's/^.* \[[0-9]+\] [^ ]* ([^:]*): ERROR:  (.*)$/\1|error|0|\2/p' \
        | awk -F'|' -v c="$c" 'BEGIN{OFS="|"} {print c, $1, $2, $3, $4}' >>"$d/logwaits.psv" || true
    S -qc "\copy logwait FROM '$d/logwaits.psv' WITH (FORMAT csv, DELIMITER '|')"
    aborted=$(grep -c 'aborted' "$d/pgbench.err" || true)
    r1=$(cat "$d/report1.rc"); r2=$(cat "$d/report2.rc")
    retries=$(grep -c 'hit lock_timeout' "$d/report2.log" || true)
    # attempts per worker (a scheduler's retries in (a')), and how the failed ones ended
    att=$(cat "$d/report1.attempts" 2>/dev/null || echo 1)/$(cat "$d/report2.attempts" 2>/dev/null || echo 1)
    gcancel=$(cat "$d"/report[12].log | grep -c 'pglane cancelled this statement' || true)
    gterm=$(cat "$d"/report[12].log | grep -c 'pglane terminated this idle transaction' || true)
    grefused=$(cat "$d"/report[12].log | grep -c 'pglane refuses statement shape' || true)
    ltimeout=$(cat "$d"/report[12].log | grep -c 'canceling statement due to lock timeout' || true)
    IFS='|' read -r rep_rows exp_rows rep_hash exp_hash accurate <"$d/accuracy.txt"
    # A report that did not complete left the rows of an earlier configuration's run: not its own.
    if [ "$r1" != 0 ] || [ "$r2" != 0 ]; then rep_rows='-'; rep_hash='not completed'; accurate='-'; fi
    S -qc "INSERT INTO facts VALUES ('$c','aborted','$aborted'), ('$c','report_rc','$r1/$r2'),
           ('$c','retries','$retries'), ('$c','rep_rows','$rep_rows'), ('$c','rep_hash','$rep_hash'),
           ('$c','exp_hash','$exp_hash'), ('$c','accurate','$accurate'), ('$c','attempts','$att'),
           ('$c','ended','$gcancel / $gterm / $grefused / $ltimeout')"
    if [ -f "$d/replica_facts.txt" ]; then
        while IFS='|' read -r k v; do S -qc "INSERT INTO facts VALUES ('$c', '$k', '${v//\'/}')"; done <"$d/replica_facts.txt"
        for t in p r; do
            tail -n +2 "$d/lag_$( [ $t = p ] && echo primary || echo replica).csv" | grep -E '^[0-9]' | sed "s/^/$c,/" >"$d/lag_$t.load" || true
        done
        S -qc "\copy lag_p FROM '$d/lag_p.load' WITH (FORMAT csv)" -c "\copy lag_r FROM '$d/lag_r.load' WITH (FORMAT csv)"
        grep -E '^[0-9.]+,-?[0-9]+,-?[0-9]+,' "$d/lag_pglane.csv" | sed "s/^/$c,/" >"$d/lag_g.load" || true
        S -qc "\copy lag_g FROM '$d/lag_g.load' WITH (FORMAT csv)"
        rm -f "$d"/lag_?.load
    fi
done

# ---- the comparison table: one row per metric, one column per configuration
S -q <<EOF
CREATE VIEW w AS
SELECT t.config, x.lat_us / 1000.0 AS ms, x.failed, x.script,
       (x.done_epoch - extract(epoch FROM t.start_at))::float8 - coalesce(x.lat_us, 0) / 1e6 AS sched_s,
       (x.done_epoch - extract(epoch FROM t.start_at))::float8 AS done_s,
       extract(epoch FROM t.report_start - t.start_at) AS rs_s,
       extract(epoch FROM t.report_end - t.start_at) AS re_s,
       extract(epoch FROM t.end_at - t.start_at) AS end_s
FROM tx x JOIN timeline t USING (config);

CREATE FUNCTION pct(cfg text, lo float8, hi float8, only_script int DEFAULT NULL) RETURNS text
LANGUAGE sql AS \$\$
  SELECT coalesce(to_char(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 'FM99990.0') || ' / ' ||
         to_char(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), 'FM99990.0') || ' / ' ||
         to_char(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 'FM99990.0') || ' / ' ||
         to_char(percentile_cont(0.999) WITHIN GROUP (ORDER BY ms), 'FM99990.0') || ' / ' ||
         to_char(max(ms), 'FM99990.0'), '-')
  FROM w WHERE config = cfg AND NOT failed AND sched_s >= lo AND sched_s < hi
        AND (only_script IS NULL OR script = only_script)
\$\$;
CREATE FUNCTION p99(cfg text, lo float8, hi float8) RETURNS float8 LANGUAGE sql AS \$\$
  SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FROM w
  WHERE config = cfg AND NOT failed AND sched_s >= lo AND sched_s < hi
\$\$;

CREATE TABLE m (config text, ord int, key text, value text);
INSERT INTO m
SELECT t.config, v.ord, v.key, v.value
FROM timeline t
CROSS JOIN LATERAL (SELECT extract(epoch FROM t.report_start - t.start_at) AS rs,
                           extract(epoch FROM t.report_end - t.start_at) AS re,
                           extract(epoch FROM t.end_at - t.start_at) AS en) s
CROSS JOIN LATERAL (VALUES
  (1, 'OLTP transactions completed / TPS',
      (SELECT count(*) FILTER (WHERE NOT failed) || ' / ' || round(count(*) FILTER (WHERE NOT failed) / s.en, 1) FROM w WHERE config = t.config)),
  (1, 'OLTP arrivals never started by the end (open-loop backlog)',
      greatest(0, round($rate * s.en) - (SELECT count(*) FROM w WHERE config = t.config))::text),
  (2, 'OLTP latency alone, ms: p50 / p95 / p99 / p99.9 / max', pct(t.config, 2, s.rs)),
  (3, 'OLTP latency during the report run, ms: p50 / p95 / p99 / p99.9 / max', pct(t.config, s.rs, s.re)),
  (4, 'p99 during report / p99 alone',
      to_char(p99(t.config, s.rs, s.re) / nullif(p99(t.config, 2, s.rs), 0), 'FM9990.0') || 'x'),
  (5, 'event upsert only, p99 alone / during report, ms',
      coalesce((SELECT to_char(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 'FM99990.0') FROM w WHERE config = t.config AND script = 0 AND NOT failed AND sched_s >= 2 AND sched_s < s.rs), '-')
      || ' / ' ||
      coalesce((SELECT to_char(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 'FM99990.0') FROM w WHERE config = t.config AND script = 0 AND NOT failed AND sched_s >= s.rs AND sched_s < s.re), '-')),
  (6, 'OLTP latency whole run, ms: p50 / p95 / p99 / p99.9 / max', pct(t.config, 0, 1e9)),
  (7, 'seconds with zero OLTP commits',
      (SELECT count(*)::text FROM generate_series(1, floor(s.en)::int - 1) g(sec)
       WHERE NOT EXISTS (SELECT 1 FROM w WHERE config = t.config AND NOT failed AND floor(done_s) = g.sec))),
  (8, 'failed OLTP transactions (errors + aborted clients)',
      ((SELECT count(*) FROM w WHERE config = t.config AND failed)
       + (SELECT value::int FROM facts f WHERE f.config = t.config AND key = 'aborted'))::text),
  (9, 'OLTP lock waits seen by the 200 ms sampler: count / longest s',
      (SELECT count(DISTINCT (waiting_pid, round(extract(epoch FROM sampled_at) - wait_s, 1))) || ' / ' || coalesce(max(wait_s)::text, '0')
       FROM blocking WHERE config = t.config AND waiting_app LIKE 'oltp%')),
  (10, 'OLTP lock waits > 100 ms (log_lock_waits): count / longest s',
      (SELECT count(*) FILTER (WHERE kind = 'still waiting for') || ' / ' || coalesce(round(max(ms) / 1000, 3)::text, '0')
       FROM logwait WHERE config = t.config AND app LIKE 'oltp%' AND kind <> 'error')),
  (11, 'OLTP waits blocked by the report run (samples)',
      (SELECT count(*)::text FROM blocking WHERE config = t.config AND waiting_app LIKE 'oltp%' AND blocking_app LIKE 'report%')),
  (12, 'report run duration, s (exit codes)',
      round(s.re - s.rs, 1) || ' (' || (SELECT value FROM facts f WHERE f.config = t.config AND key = 'report_rc') || ')'),
  (12, 'report attempts, worker 1 / 2 (a failed worker is retried after 2 s in (a''))',
      (SELECT value FROM facts f WHERE f.config = t.config AND key = 'attempts')),
  (12, 'report errors: cancelled by the guard / terminated / refused by the quarantine (55P03) / lock_timeout',
      (SELECT value FROM facts f WHERE f.config = t.config AND key = 'ended')),
  (13, 'report DDL/refresh lock timeouts retried',
      (SELECT value FROM facts f WHERE f.config = t.config AND key = 'retries')),
  (14, 'report rows / hash',
      (SELECT string_agg(value, ' / ' ORDER BY key DESC) FROM facts f WHERE f.config = t.config AND key IN ('rep_rows', 'rep_hash'))),
  (15, 'report equals the aggregate from base tables',
      (SELECT CASE value WHEN 't' THEN 'yes' WHEN '-' THEN '-' ELSE 'NO' END FROM facts f WHERE f.config = t.config AND key = 'accurate')),
  (16, 'report identical to (a)',
      (SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM facts WHERE config = 'a' AND key = 'rep_hash') OR f.value = 'not completed' THEN '-'
                   WHEN f.value = (SELECT value FROM facts WHERE config = 'a' AND key = 'rep_hash') THEN 'yes' ELSE 'NO' END
       FROM facts f WHERE f.config = t.config AND key = 'rep_hash')),
  (16, 'report hash equal to the reference (a)-(c) hash ${REF_HASH:0:8}... (REF_HASH, an earlier run)',
      (SELECT CASE WHEN '${REF_HASH}' = '' OR f.value = 'not completed' THEN '-' WHEN f.value = '${REF_HASH}' THEN 'yes' ELSE 'NO' END
       FROM facts f WHERE f.config = t.config AND key = 'rep_hash')),
  (17, '(d) replica: hot_standby_feedback / max_standby_streaming_delay',
      (SELECT max(value) FILTER (WHERE key = 'hsf') || ' / ' || max(value) FILTER (WHERE key = 'delay') FROM facts f WHERE f.config = t.config HAVING count(*) FILTER (WHERE key = 'hsf') > 0)),
  (18, '(d) replay lag during the report run, s: max / p99 (pg_stat_replication.replay_lag, 0.5 s samples)',
      (SELECT to_char(max(lag_s), 'FM9990.000') || ' / ' || to_char(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_s), 'FM9990.000')
       FROM lag_p WHERE config = t.config AND at >= extract(epoch FROM t.report_start) AND at <= extract(epoch FROM t.report_end) HAVING count(*) > 0)),
  (19, '(d) replay lag during the report run, s: max / p99 (on the replica: now - last replayed commit, 0 when all received WAL is replayed)',
      (SELECT to_char(max(lag_s), 'FM9990.000') || ' / ' || to_char(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_s), 'FM9990.000')
       FROM lag_r WHERE config = t.config AND at >= extract(epoch FROM t.report_start) AND at <= extract(epoch FROM t.report_end) HAVING count(*) > 0)),
  (20, '(d) replay lag during the report run, pglane SHOW HEALTH (1 s samples): lag_ms max / p99; lag_bytes max',
      (SELECT max(lag_ms) || ' / ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms)) || '; ' || max(lag_bytes)
       FROM lag_g WHERE config = t.config AND at >= extract(epoch FROM t.report_start) AND at <= extract(epoch FROM t.report_end) HAVING count(*) > 0)),
  (21, '(d) WAL not yet replayed during the report run, bytes: max / p99 (pg_stat_replication)',
      (SELECT max(lag_bytes) || ' / ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_bytes))
       FROM lag_p WHERE config = t.config AND at >= extract(epoch FROM t.report_start) AND at <= extract(epoch FROM t.report_end) HAVING count(*) > 0)),
  (21, '(d) replay lag whole run, s: max (pg_stat_replication / replica)',
      (SELECT to_char((SELECT max(lag_s) FROM lag_p WHERE config = t.config), 'FM9990.000') || ' / ' ||
              to_char((SELECT max(lag_s) FROM lag_r WHERE config = t.config), 'FM9990.000')
       WHERE EXISTS (SELECT 1 FROM lag_p WHERE config = t.config))),
  (22, '(d) recovery conflicts: pglane SHOW LANE SERVERS conflicts (analytics, replica1) / pg_stat_database_conflicts delta on the replica',
      (SELECT max(value) FILTER (WHERE key = 'pconf') || ' / ' || max(value) FILTER (WHERE key = 'rconf') FROM facts f WHERE f.config = t.config HAVING count(*) FILTER (WHERE key = 'pconf') > 0)),
  (23, '(d) report statements cancelled by a conflict with recovery (workers'' logs)',
      (SELECT value FROM facts f WHERE f.config = t.config AND key = 'cancelled')),
  (24, '(d) report aggregate ran on a standby (pg_is_in_recovery() in the worker''s SELECT, per attempt)',
      (SELECT nullif(value, '') FROM facts f WHERE f.config = t.config AND key = 'standby')),
  (25, '(d) reports rows on the replica once caught up: rows / hash',
      (SELECT value FROM facts f WHERE f.config = t.config AND key = 'replica_check'))
) AS v(ord, key, value);
EOF

hdr="| metric |"; sep="|---|"
for c in "${configs[@]}"; do
    case $c in a) hdr+=" (a) before, direct |";; ap) hdr+=" (a') before, through pglane |";; b) hdr+=" (b) after, direct |";; c) hdr+=" (c) after, through pglane |";; cb) hdr+=" (c_b) after, through PgBouncer |";; d) hdr+=" (d) after, pglane, report on a replica |";; dx) hdr+=" (d) conflict demo: hot_standby_feedback off, max_standby_streaming_delay 0 |";; esac
    sep+="---|"
done
cols=$(printf ", coalesce(max(value) FILTER (WHERE config = '%s'), '-')" "${configs[@]}")
table=$(S -At -F ' | ' -c "SELECT key $cols FROM m GROUP BY ord, key ORDER BY ord, key DESC" | sed 's/^/| /; s/$/ |/')

blockers=$(S -At -F ' | ' -c "
    SELECT config, lock_type || ' ' || wanted_mode || CASE WHEN relation <> '' THEN ' on ' || relation ELSE '' END,
           blocking_app || ' (' || blocking_lock || ')',
           replace(left(blocking_query, 90), '|', '/'),
           count(*), count(DISTINCT waiting_pid), max(wait_s)
    FROM blocking WHERE waiting_app LIKE 'oltp%'
    GROUP BY 1, 2, 3, 4 ORDER BY config, count(*) DESC" | awk -F' [|] ' '{ n[$1]++; if (n[$1] <= 8) print }' | sed 's/^/| /; s/$/ |/')
reportwaits=$(S -At -F ' | ' -c "
    SELECT config, waiting_app, lock_type || ' ' || wanted_mode || CASE WHEN relation <> '' THEN ' on ' || relation ELSE '' END,
           replace(left(waiting_query, 70), '|', '/'), blocking_app || ' (' || blocking_lock || ')', count(*), max(wait_s)
    FROM blocking WHERE waiting_app LIKE 'report%'
    GROUP BY 1, 2, 3, 4, 5 ORDER BY config, count(*) DESC" | awk -F' [|] ' '{ n[$1]++; if (n[$1] <= 5) print }' | sed 's/^/| /; s/$/ |/')

# ---- plot data: per second of scheduled time, p50 / p99 / max latency
for c in "${configs[@]}"; do
    S -At -F ' ' -c "
        SELECT floor(sched_s)::int, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(max(ms)::numeric, 2)
        FROM w WHERE config = '$c' AND NOT failed GROUP BY 1 ORDER BY 1" >"$out/latency-$c.dat"
done
win() { S -At -F ' ' -c "SELECT round(extract(epoch FROM report_start - start_at), 1), round(extract(epoch FROM report_end - start_at), 1) FROM timeline WHERE config = '$1'"; }
png=$out/latency.png
if command -v gnuplot >/dev/null; then
    {
        echo "set terminal pngcairo size 1200,$((300 * ${#configs[@]})) font ',10'"
        echo "set output '$png'"
        echo "set multiplot layout ${#configs[@]},1"
        echo "set logscale y; set yrange [0.5:*]; set grid; set key top left"
        echo "set xlabel 'seconds since OLTP start'; set ylabel 'latency, ms (log)'"
        for c in "${configs[@]}"; do
            read -r a b < <(win "$c")
            case $c in a) t="(a) before, direct";; ap) t="(a') before, through pglane (guard = cancel, guard_wait 50ms)";; b) t="(b) after migrations, direct";; c) t="(c) after, through pglane";; cb) t="(c_b) after, through PgBouncer";; d) t="(d) after, through pglane, report reads on a replica";; dx) t="(d) with hot_standby_feedback off, max_standby_streaming_delay 0";; esac
            echo "set title 'InsightsNow OLTP latency per second, $t (open loop, $rate tx/s, SCALE=$scale)'"
            echo "unset object; set object 1 rect from $a, graph 0 to $b, graph 1 fc rgb '#ffdddd' fs solid 0.5 noborder behind"
            echo "set label 1 'report run' at $a, graph 0.93 offset 0.5,0"
            echo "plot '$out/latency-$c.dat' using 1:4 with lines lc rgb '#aa0000' title 'max', '' using 1:3 with lines lc rgb '#dd7700' title 'p99', '' using 1:2 with lines lc rgb '#0044aa' title 'p50'"
        done
        echo "unset multiplot"
    } >"$out/latency.gp"
    gnuplot "$out/latency.gp" || echo "analyze: gnuplot failed" >&2
fi

# ---- slow statements and plans
for c in "${configs[@]}"; do
    awk '/LOG:  duration: [0-9.]+ ms  plan:/{p=1} p && /^[0-9]{4}-/ && !/plan:/{p=0} p' "$out/$c/postgres.log" >"$out/$c/auto_explain.txt" || true
done

{
    echo "# InsightsNow: OLTP vs the monthly report run ($(date '+%Y-%m-%d %H:%M %Z'))"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "PostgreSQL $(in_psql -Atc 'show server_version'); SCALE=$scale ($nacc accounts, $nev events, loaded in ${load_s%.*} s); report period $period."
    echo "OLTP: pgbench open loop, $rate tx/s, $clients clients, scripts upsert@7 / dashboard_read@2 / dashboard_save@1;"
    echo "${alone} s alone, then the report run (2 workers) starts and OLTP continues ${with} s. Latency is measured from each"
    echo "transaction's scheduled start, so a stall counts in full. The first 2 s are warm-up, not counted in \"alone\"; before the"
    echo "timeline, ${WARMUP:-3} s of the same scripts in a closed loop through the same port (WARMUP) warm each configuration's connections."
    [ -f "$out/ap/timeline.txt" ] && echo "(a'): (a)'s schema, settings and scripts through pglane: the lanes of (c), guard = cancel and guard_wait = 50ms on oltp, the quarantine's defaults, the report route statement-routed (sql = .); a failed report worker is retried after 2 s."
    [ -f "$out/d/timeline.txt" ] && echo "(d): as (c), but the analytics lane is server = replica1, primary (size ${D_ANALYTICS_SIZE:-2}, max_replica_lag 5s, replica_fallback = queue): a streaming replica of the cluster (pg_basebackup -R, same machine, shared_buffers 2GB) runs worker 1's aggregate (one read-only autocommit SELECT, workloads/report_monthly_replica.sql); its writes (report_runs, the reports rows) and worker 2 (partitions, dashboard_daily, REFRESH) run on the primary."
    [ -f "$out/c/timeline.txt" ] && echo "(c): pglane lanes oltp (size $clients) and analytics (size $asize, max_parallel_workers_per_gather ${ANALYTICS_PARALLEL:-0}, lock_timeout 200ms), route application_name=report-*."
    [ -f "$out/cb/timeline.txt" ] && echo "(c_b): PgBouncer, transaction pooling, default_pool_size $clients (the OLTP user's pool), max_user_connections $asize for the report user, SCRAM, TCP to the server; no per-pool settings (the reports run with the database's own)."
    [ -f "$out/migration_times.txt" ] && echo "Migrations (offline, between (a) and (b)): $(tr '\n' ';' <"$out/migration_times.txt" | sed 's/;$//; s/;/; /g')."
    echo "Whole run: $(($(date +%s) - t_begin)) s."
    echo
    echo "$hdr"; echo "$sep"; echo "$table"
    echo
    echo "![OLTP latency](insightsnow-$(basename "$out" | sed 's/^insightsnow-//')/latency.png)"
    echo
    echo "## Who blocked the OLTP backends (200 ms samples of blocking.sql)"
    echo
    echo "| config | OLTP backend waited for | blocker (its lock on the same object) | blocking statement | samples | backends | longest wait s |"
    echo "|---|---|---|---|---|---|---|"
    [ -n "$blockers" ] && echo "$blockers"
    echo
    echo "## Lock waits of the report run itself"
    echo
    echo "| config | waiter | waited for | statement | blocker | samples | longest wait s |"
    echo "|---|---|---|---|---|---|---|"
    [ -n "$reportwaits" ] && echo "$reportwaits"
    echo
    echo "Raw data: $(basename "$out")/ (per-transaction logs, blocking.csv, server log slices, pg_stat_statements.txt, auto_explain.txt per configuration)."
} >"$md"
in_psql -qc "DROP DATABASE IF EXISTS benchstats" >/dev/null
cat "$md"
