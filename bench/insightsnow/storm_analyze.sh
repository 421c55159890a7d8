#!/usr/bin/env bash
# The report storm's analysis (storm.sh): pgbench per-transaction logs, the reports' submit/start/end
# times and pglane's effective-size log lines into a markdown summary, computed in SQL in a scratch
# database "stormstats" of the run's own cluster (IN_SOCK, IN_PORT exported by run).
# Usage: storm_analyze.sh STORM_DIR MD SCALE RATE CLIENTS ALONE WITH NACC NEV BIG OTHERS GAP ADAPT_SIZE
#                         TARGET_P99 T_BEGIN CONFIG...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
sout=$1 md=$2 scale=$3 rate=$4 clients=$5 alone=$6 with=$7 nacc=$8 nev=$9 big=${10} others=${11} gap=${12}
asize=${13} target=${14} t_begin=${15}
shift 15
configs=()
for c in "$@"; do [ -f "$sout/$c/timeline.txt" ] && configs+=("$c"); done
[ "${#configs[@]}" -gt 0 ] || { echo "storm_analyze: no configuration ran" >&2; exit 1; }

S() { in_psql -d stormstats "$@"; }
in_psql -qc "DROP DATABASE IF EXISTS stormstats" -c "CREATE DATABASE stormstats" >/dev/null
S -q <<'EOF'
CREATE TABLE stl (config text, ord int, start_at float8, storm_start float8, storm_end float8, end_at float8,
                  pgbench_rc int, target text);
CREATE TABLE stx (config text, lat_ms float8, failed bool, sched_s float8);
CREATE TABLE srep (config text, tenant text, idx int, launch float8, submit float8, t_start float8, t_end float8,
                   c_end float8, rc int);
CREATE TABLE seff (config text, at_s float8, change text, why text);
EOF

ord=0
for c in "${configs[@]}"; do
    d=$sout/$c; ord=$((ord + 1))
    read -r _ st ss se en rc tg <"$d/timeline.txt"
    S -qc "INSERT INTO stl VALUES ('$c', $ord, $st, $ss, $se, $en, $rc, '$tg')"
    # pgbench 15 log: client txno latency_us|failed|skipped script epoch usec [lag_us]; sched_s from OLTP start
    cat "$d"/tx.[0-9]* 2>/dev/null | awk -v c="$c" -v st="$st" '
        { done = $5 + $6 / 1e6 - st
          if ($3 == "failed" || $3 == "skipped") printf "%s,,t,%.6f\n", c, done
          else printf "%s,%.3f,f,%.6f\n", c, $3 / 1000, done - $3 / 1e6 }' >"$d/tx.csv"
    S -qc "\copy stx FROM '$d/tx.csv' WITH (FORMAT csv)"
    sed "s/^/$c,/" "$d/reports.csv" >"$d/reports-c.csv"
    S -qc "\copy srep FROM '$d/reports-c.csv' WITH (FORMAT csv)"
    # "2026-12-04 01:30:12.345 INFO lane analytics: effective size 2 -> 1: lane oltp p99 41.0 ms over 212 ..."
    : >"$d/effective_size.csv"
    while IFS= read -r line; do
        at=$(date -d "$(cut -c1-23 <<<"$line")" +%s.%N)
        ch=$(sed -nE 's/.*effective size ([0-9]+ -> [0-9]+).*/\1/p' <<<"$line")
        why=$(sed -nE 's/.*effective size [0-9]+ -> [0-9]+: (.*)$/\1/p' <<<"$line" | tr ',' ';')
        printf '%s,%s,%s,%s\n' "$c" "$(echo "$at - $ss" | bc)" "$ch" "$why" >>"$d/effective_size.csv"
    done <"$d/effective_size.txt"
    S -qc "\copy seff FROM '$d/effective_size.csv' WITH (FORMAT csv)"
done

S -q -v nice="${STORM_NICE:-19}" -v tmax="${STORM_TENANT_MAX:-0}" <<'EOF'
CREATE VIEW w AS
SELECT x.config, x.lat_ms, x.failed, x.sched_s, l.storm_start - l.start_at AS ss, l.storm_end - l.start_at AS se,
       l.end_at - l.start_at AS en
FROM stx x JOIN stl l USING (config);
CREATE VIEW r AS
SELECT p.*, p.t_start - p.submit AS delay_s, p.t_end - p.t_start AS dur_s, p.tenant <> 'big' AS other
FROM srep p;
CREATE FUNCTION f1(x float8) RETURNS text LANGUAGE sql AS $$ SELECT to_char(x, 'FM999990.0') $$;
CREATE FUNCTION f2(x float8) RETURNS text LANGUAGE sql AS $$ SELECT to_char(x, 'FM999990.00') $$;
CREATE FUNCTION p99(cfg text, lo float8, hi float8) RETURNS float8 LANGUAGE sql AS $$
  SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY lat_ms) FROM w
  WHERE config = cfg AND NOT failed AND sched_s >= lo AND sched_s < hi $$;
CREATE VIEW per AS
SELECT l.config, l.ord, l.target,
       p99(l.config, 2, l.storm_start - l.start_at) AS p99_alone,
       p99(l.config, l.storm_start - l.start_at, l.storm_end - l.start_at) AS p99_during,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY dur_s) FROM r WHERE r.config = l.config AND rc = 0) AS dur_med,
       (SELECT max(delay_s) FROM r WHERE r.config = l.config AND other) AS other_delay_max,
       (SELECT count(*) FROM r WHERE r.config = l.config AND rc = 0) AS done,
       (SELECT max(t_end) - min(submit) FROM r WHERE r.config = l.config) AS makespan
FROM stl l;
CREATE VIEW per2 AS
SELECT *, done / nullif(makespan, 0) * 60 AS tput,
       max(done / nullif(makespan, 0) * 60) FILTER (WHERE config NOT LIKE '%-adapt%') OVER () AS best_fixed
FROM per;

CREATE TABLE m (config text, ord int, key text, value text);
INSERT INTO m
SELECT p.config, v.ord, v.key, v.value
FROM per2 p
CROSS JOIN LATERAL (VALUES
  (1, 'analytics lane',
      CASE WHEN p.config LIKE 'fifo-%' THEN 'FIFO, size ' || substr(regexp_replace(p.config, '-nice$', ''), 6)
           WHEN p.config LIKE 'fair-adapt%' THEN 'fair (tenant_key = hint), adaptive cap'
           ELSE 'fair (tenant_key = hint), size ' || substr(regexp_replace(p.config, '-nice$', ''), 6) END
      || CASE WHEN p.config LIKE '%-nice' THEN ', backend_nice = ' || :'nice' ELSE '' END
      || CASE WHEN p.config NOT LIKE 'fifo-%' AND :'tmax' <> '0' THEN ', tenant_max = ' || :'tmax' ELSE '' END),
  (2, 'OLTP transactions completed / failed',
      (SELECT count(*) FILTER (WHERE NOT failed) || ' / ' || count(*) FILTER (WHERE failed) FROM w WHERE w.config = p.config)),
  (3, 'OLTP p99 alone, ms', f1(p.p99_alone)),
  (4, 'OLTP during the storm, ms: p50 / p95 / p99 / max',
      (SELECT f1(percentile_cont(0.5) WITHIN GROUP (ORDER BY lat_ms)) || ' / ' || f1(percentile_cont(0.95) WITHIN GROUP (ORDER BY lat_ms))
              || ' / ' || f1(percentile_cont(0.99) WITHIN GROUP (ORDER BY lat_ms)) || ' / ' || f1(max(lat_ms))
       FROM w WHERE w.config = p.config AND NOT failed AND sched_s >= ss AND sched_s < se)),
  (5, '**OLTP p99 during / alone** (target <= 1.5x)', f1(p.p99_during / nullif(p.p99_alone, 0)) || 'x'),
  (6, 'reports completed / failed',
      p.done || ' / ' || (SELECT count(*) FROM r WHERE r.config = p.config AND rc <> 0)),
  (7, 'report duration, s: median / max (all reports)',
      (SELECT f2(p.dur_med) || ' / ' || f2(max(dur_s)) FROM r WHERE r.config = p.config AND rc = 0)),
  (8, 'start delay of big''s reports, s: min / median / max',
      (SELECT f2(min(delay_s)) || ' / ' || f2(percentile_cont(0.5) WITHIN GROUP (ORDER BY delay_s)) || ' / ' || f2(max(delay_s))
       FROM r WHERE r.config = p.config AND NOT other)),
  (9, 'start delay of the other tenants'' reports, s (t1..tN)',
      (SELECT string_agg(f2(delay_s), ' / ' ORDER BY tenant) FROM r WHERE r.config = p.config AND other)),
  (10, 'other tenants'' report duration, s (t1..tN)',
      (SELECT string_agg(f2(dur_s), ' / ' ORDER BY tenant) FROM r WHERE r.config = p.config AND other)),
  (11, '**other tenants'' longest start delay / median report duration** (target <= 1)',
      f1(p.other_delay_max / nullif(p.dur_med, 0))),
  (12, 'other tenants'' start delay in median report durations: each',
      (SELECT string_agg(f1(delay_s / nullif(p.dur_med, 0)), ' / ' ORDER BY tenant) FROM r WHERE r.config = p.config AND other)),
  (13, 'storm makespan, s (first submit to last report end)', f1(p.makespan)),
  (14, 'report throughput, reports/min', f1(p.tput)),
  (15, '**throughput / best fixed size** (target >= 0.9)', f2(p.tput / nullif(p.best_fixed, 0))),
  (16, 'analytics effective size: changes (seconds after the storm began)',
      coalesce((SELECT string_agg(change || ' @' || f1(at_s) || 's', ', ' ORDER BY at_s) FROM seff s WHERE s.config = p.config),
               CASE WHEN p.config LIKE 'fair-adapt%' THEN 'none' ELSE '- (fixed)' END)),
  (17, 'target_p99 of the adaptive cap, ms', CASE WHEN p.target = '-' THEN '-' ELSE p.target END),
  (18, 'OLTP load lasted past the last report',
      (SELECT CASE WHEN l.end_at >= l.storm_end THEN 'yes' ELSE 'NO: "during" is cut at the end of OLTP' END
       FROM stl l WHERE l.config = p.config))
) AS v(ord, key, value);

CREATE TABLE tt (config text, tenant text, value text);
INSERT INTO tt
SELECT config, tenant,
       CASE WHEN count(*) = 1 THEN f2(min(delay_s)) || ' s / ' || f2(min(dur_s)) || ' s'
            ELSE f2(min(delay_s)) || '-' || f2(max(delay_s)) || ' s (median ' || f2(percentile_cont(0.5) WITHIN GROUP (ORDER BY delay_s))
                 || ') / ' || f2(percentile_cont(0.5) WITHIN GROUP (ORDER BY dur_s)) || ' s' END
       || CASE WHEN bool_or(rc <> 0) THEN ' (' || count(*) FILTER (WHERE rc <> 0) || ' failed)' ELSE '' END
FROM r GROUP BY config, tenant;
EOF

hdr="| metric |"; sep="|---|"; thdr="| tenant (reports) |"
for c in "${configs[@]}"; do hdr+=" $c |"; sep+="---|"; thdr+=" $c |"; done
cols=$(printf ", coalesce(max(value) FILTER (WHERE config = '%s'), '-')" "${configs[@]}")
table=$(S -At -F ' | ' -c "SELECT key $cols FROM m GROUP BY ord, key ORDER BY ord" | sed 's/^/| /; s/$/ |/')
ttable=$(S -At -F ' | ' -c "SELECT tenant || ' (' || CASE WHEN tenant = 'big' THEN '$big' ELSE '1' END || ')' $cols
                            FROM tt GROUP BY tenant ORDER BY tenant <> 'big', tenant" | sed 's/^/| /; s/$/ |/')
whys=$(S -At -F ' | ' -c "SELECT config, f1(at_s), change, why FROM seff ORDER BY config, at_s" | sed 's/^/| /; s/$/ |/')

{
    echo "# InsightsNow: multi-tenant report storm through pglane ($(date '+%Y-%m-%d %H:%M %Z'))"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "PostgreSQL $(in_psql -Atc 'show server_version'); SCALE=$scale ($nacc accounts, $nev events); database after the fixes (migrations 001-006, postgresql.tuned.conf)."
    echo "OLTP: pgbench open loop through pglane's lane oltp (size $clients), $rate tx/s, $clients clients, upsert@7 / dashboard_read@2 / dashboard_save@1;"
    echo "latency from each transaction's scheduled start. Per configuration: ${alone} s of OLTP alone (the first 2 s not counted), then the"
    echo "storm: tenant big submits $big concurrent reports, ${gap} s later tenants t1..t$others one report each; OLTP runs ${with} s more."
    echo "\"During\" = OLTP transactions scheduled between the first report's submit and the last report's end."
    echo "A report: one transaction on lane analytics (application_name report-storm, \`/* pglane tenant=ID */\` hint, max_parallel_workers_per_gather 0,"
    echo "work_mem 256MB) running the monthly report's two aggregates over the month, read only. Start delay = PostgreSQL's clock_timestamp()"
    echo "at the report's first statement (when pglane handed it a server connection) - the client's clock when psql, connected and logged"
    echo "in to pglane, is about to send BEGIN (same machine); duration = its last statement's clock_timestamp() - the first's. t1..t$others"
    echo "start ${gap} s after all of big's reports have submitted. Throughput = reports completed / makespan (first submit to last report end)."
    echo "fair-adapt: analytics size $asize, min_size 1, protects = oltp, adapt_interval 1s,"
    echo "target_p99 ${target} (auto = ${STORM_AUTO_FACTOR:-?} x the OLTP p99 alone of the first configuration); pglane's p99 is measured from the transaction's"
    echo "first statement to its end, without pgbench's schedule lag."
    echo "Whole run: $(($(date +%s) - t_begin)) s."
    echo
    echo "$hdr"; echo "$sep"; echo "$table"
    echo
    echo "Each tenant's reports: start delay / duration (big: range of the start delays, median, and the median duration):"
    echo
    echo "$thdr"; echo "$sep"; echo "$ttable"
    if [ -n "$whys" ]; then
        echo
        echo "Adaptive cap decisions (pglane's log):"
        echo
        echo "| config | s after storm start | effective size | why |"
        echo "|---|---|---|---|"
        echo "$whys"
    fi
    echo
    echo "Raw data: per configuration pglane.ini, pglane.log, tx.* (pgbench logs), reports.csv (tenant, i, psql launch, submit, start, end, client end, rc),"
    echo "admin-during.txt / admin-end.txt (SHOW TENANTS and SHOW LANES 1 s into the storm and at the end)."
} >"$md"
in_psql -qc "DROP DATABASE IF EXISTS stormstats" >/dev/null
cat "$md"
