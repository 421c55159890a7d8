-- 002: a role of its own for the report job, and per-role timeouts as the second line of defence.
-- Measured problems it removes (README "Findings"):
--   * the report job ran as insightsuser, the owner of every table, so it could (and did) run
--     ALTER TABLE dashboards and CREATE INDEX on events in the middle of the day;
--   * nothing bounded a report's lock waits: its ACCESS EXCLUSIVE request sat in the lock queue for
--     the whole report transaction while every dashboard read queued behind it.
-- insights_report may read everything, write reports and report_runs, and owns only the dashboards'
-- materialized view (REFRESH needs ownership). Its DDL need (next months' partitions) goes through
-- events_ensure_partitions(), a SECURITY DEFINER function (migration 003).
-- The first line of defence is pglane's lanes (conf/insightsnow.ini); these settings hold even for a
-- client that connects to PostgreSQL directly. Idempotent.
SET statement_timeout = 0;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'insights_report') THEN
        CREATE ROLE insights_report LOGIN PASSWORD 'reportpass';
    END IF;
END $$;

GRANT CONNECT ON DATABASE insightsnowdb TO insights_report;
GRANT USAGE ON SCHEMA public TO insights_report;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO insights_report;
GRANT INSERT, UPDATE, DELETE ON reports TO insights_report;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO insights_report;
ALTER DEFAULT PRIVILEGES FOR ROLE insightsuser IN SCHEMA public GRANT SELECT ON TABLES TO insights_report;

-- OLTP (event API, dashboards): statements take milliseconds; a 5 s statement or a 2 s lock wait is
-- a bug, and an idle open transaction holds locks and snapshots that block vacuum.
ALTER ROLE insightsuser IN DATABASE insightsnowdb SET statement_timeout = '5s';
ALTER ROLE insightsuser IN DATABASE insightsnowdb SET lock_timeout = '2s';
ALTER ROLE insightsuser IN DATABASE insightsnowdb SET idle_in_transaction_session_timeout = '30s';

-- Reports: long statements are expected (10 min), but a lock wait never is: 200 ms makes a report's
-- DDL or REFRESH give up (and retry later) instead of queueing in front of OLTP. One parallel
-- worker: on this 2-core box every extra worker is a core taken from OLTP. Big work_mem: in-memory
-- hash aggregates instead of external sorts (measured 60 MB of sort spill per report query).
ALTER ROLE insights_report IN DATABASE insightsnowdb SET statement_timeout = '10min';
ALTER ROLE insights_report IN DATABASE insightsnowdb SET lock_timeout = '200ms';
ALTER ROLE insights_report IN DATABASE insightsnowdb SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE insights_report IN DATABASE insightsnowdb SET max_parallel_workers_per_gather = 1;
ALTER ROLE insights_report IN DATABASE insightsnowdb SET work_mem = '256MB';
