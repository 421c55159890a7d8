-- Monthly report, "before": worker 2 of the report run (started a few seconds after worker 1).
-- Runs as insightsuser, the owner of everything, like the original job.
-- What makes it hurt OLTP (see README "Findings"):
--   (3) schema upkeep the job runs every month "just in case": ALTER TABLE dashboards asks for
--       ACCESS EXCLUSIVE, queues behind worker 1's long transaction (ACCESS SHARE on dashboards),
--       and every dashboard read and save queues behind the ALTER;
--       then CREATE INDEX (not CONCURRENTLY) on events takes SHARE: no event insert for the whole build;
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
