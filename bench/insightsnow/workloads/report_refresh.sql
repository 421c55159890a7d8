-- Monthly report, "before": worker 2 of the report run (started a few seconds after worker 1).
-- Runs as insightsuser, the owner of everything, like the original job.
-- What makes it hurt OLTP (see README "Findings"):
--   (3) DDL in the middle of the day: CREATE INDEX (not CONCURRENTLY) on events asks for SHARE,
--       queues behind upserts that hold ROW EXCLUSIVE while they wait for worker 1's row locks, and
--       every new upsert queues behind that request, then behind the whole build;
--       ALTER TABLE dashboards (schema upkeep "just in case") asks for ACCESS EXCLUSIVE: it queues
--       in front of every dashboard read whenever any transaction holds dashboards (in the bench runs
--       worker 1 reads dashboards only at its end, so this one did not get to queue);
--   (2) REFRESH MATERIALIZED VIEW without CONCURRENTLY: ACCESS EXCLUSIVE on dashboard_daily for the
--       whole refresh, so dashboard reads wait.
\if :{?period}
\else
\set period 2025-06-01
\endif
\set ON_ERROR_STOP 1
ALTER TABLE dashboards ADD COLUMN IF NOT EXISTS last_report_period date;
CREATE INDEX IF NOT EXISTS events_report_month_idx ON events (account_id, occurred_at);
REFRESH MATERIALIZED VIEW dashboard_daily;
UPDATE dashboards SET last_report_period = :'period' WHERE last_report_period IS DISTINCT FROM :'period'::date;
