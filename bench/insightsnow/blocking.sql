-- Who blocks whom, right now: one row per (waiting backend, backend it waits for).
-- psql -X -d insightsnowdb -f blocking.sql        (as a superuser, or a member of pg_monitor)
-- Columns: sampled_at, the waiting backend (pid, application_name, user, how long it has waited for
-- this lock, the lock it asks for: type, mode, relation), the blocking backend (pid, application_name,
-- user, state, the lock it holds or is queued for on the same object: "granted" means it holds it,
-- "queued" means it waits too but is ahead in the queue, which is how a DDL request that is itself
-- waiting blocks everything behind it), how long the blocker's transaction has been open, and both
-- statements. pg_locks.waitstart (PostgreSQL 14+) gives the true start of the wait.
-- Used as is by the runner's sampler (samples every 200 ms into a CSV, see sample_blocking.sh).
SELECT clock_timestamp()                                               AS sampled_at,
       w.pid                                                           AS waiting_pid,
       w.application_name                                              AS waiting_app,
       w.usename                                                       AS waiting_user,
       round(extract(epoch FROM clock_timestamp() - wl.waitstart)::numeric, 3) AS wait_s,
       wl.locktype                                                     AS lock_type,
       wl.mode                                                         AS wanted_mode,
       coalesce(wl.relation::regclass::text, '')                       AS relation,
       b.pid                                                           AS blocking_pid,
       b.application_name                                              AS blocking_app,
       b.usename                                                       AS blocking_user,
       b.state                                                         AS blocking_state,
       coalesce(bl.modes, '')                                          AS blocking_lock,
       round(extract(epoch FROM clock_timestamp() - b.xact_start)::numeric, 3) AS blocking_xact_s,
       left(regexp_replace(w.query, '\s+', ' ', 'g'), 160)             AS waiting_query,
       left(regexp_replace(b.query, '\s+', ' ', 'g'), 160)             AS blocking_query
FROM pg_locks wl
JOIN pg_stat_activity w ON w.pid = wl.pid
CROSS JOIN LATERAL unnest(pg_blocking_pids(wl.pid)) AS bp(pid)
JOIN pg_stat_activity b ON b.pid = bp.pid
LEFT JOIN LATERAL (
    SELECT string_agg(DISTINCT hl.mode || CASE WHEN hl.granted THEN ' granted' ELSE ' queued' END, '+') AS modes
    FROM pg_locks hl
    WHERE hl.pid = b.pid
      AND hl.locktype = wl.locktype
      AND hl.database IS NOT DISTINCT FROM wl.database
      AND hl.relation IS NOT DISTINCT FROM wl.relation
      AND hl.page IS NOT DISTINCT FROM wl.page
      AND hl.tuple IS NOT DISTINCT FROM wl.tuple
      AND hl.transactionid IS NOT DISTINCT FROM wl.transactionid
      AND hl.virtualxid IS NOT DISTINCT FROM wl.virtualxid
      AND hl.classid IS NOT DISTINCT FROM wl.classid
      AND hl.objid IS NOT DISTINCT FROM wl.objid
      AND hl.objsubid IS NOT DISTINCT FROM wl.objsubid
) bl ON true
WHERE NOT wl.granted
ORDER BY wait_s DESC NULLS LAST, waiting_pid, blocking_pid;
