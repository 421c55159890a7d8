#!/usr/bin/env bash
# Samples blocking.sql every 200 ms into a CSV until killed (the runner stops it by PID).
# Usage: sample_blocking.sh OUT.csv  psql-connection-options...
#   e.g. sample_blocking.sh /tmp/b.csv -h /tmp/sock -p 5433 -U postgres -d insightsnowdb
set -u
out=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
echo "sampled_at,waiting_pid,waiting_app,waiting_user,wait_s,lock_type,wanted_mode,relation,blocking_pid,blocking_app,blocking_user,blocking_state,blocking_lock,blocking_xact_s,waiting_query,blocking_query" >"$out"
script=$out.sql     # exec below makes this process psql itself, so that killing the PID stops it
{ echo '\pset format csv'; echo '\pset tuples_only on'; grep -v '^--' "$here/blocking.sql" | sed 's/;[[:space:]]*$//'; echo '\watch 0.2'; } >"$script"
exec psql -X -q "$@" -f "$script" >>"$out"
