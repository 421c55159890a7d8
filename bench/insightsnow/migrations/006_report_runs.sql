-- 006: the report job's bookkeeping leaves the hot rows.
-- Measured problem it removes (README "Findings"): the job began with
--   UPDATE accounts SET report_status = 'running'
-- and held those row locks until its COMMIT, many seconds later: every event upsert's counter update
-- on accounts waited for the whole report (transactionid lock waits, blocked by report-monthly).
-- Now a run is one row in report_runs, written in a transaction of its own; accounts is not written
-- by the report at all. The column the old job added "just in case" with ALTER TABLE dashboards goes
-- too (report state lives in report_runs and reports).
-- Also measured (smoke run of config (c)): each run replaces a month of reports rows (DELETE +
-- INSERT), which leaves empty pages at the end of the table; autovacuum then truncates them, which
-- takes ACCESS EXCLUSIVE on reports for a moment, and dashboard reads of reports waited up to 0.57 s
-- behind "autovacuum: VACUUM ANALYZE public.reports". vacuum_truncate = off keeps those pages for
-- the next run's rows instead. Idempotent.
SET statement_timeout = 0;
SET lock_timeout = '10s';
SET ROLE insightsuser;

CREATE TABLE IF NOT EXISTS report_runs (
    id          bigserial PRIMARY KEY,
    period      date NOT NULL CHECK (period = date_trunc('month', period)),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    accounts    int
);
CREATE INDEX IF NOT EXISTS report_runs_period_idx ON report_runs (period);

ALTER TABLE accounts DROP COLUMN IF EXISTS report_status;
ALTER TABLE accounts DROP COLUMN IF EXISTS report_started_at;
ALTER TABLE dashboards DROP COLUMN IF EXISTS last_report_period;
ALTER TABLE reports SET (vacuum_truncate = off);

RESET ROLE;
GRANT SELECT, INSERT, UPDATE ON report_runs TO insights_report;
GRANT USAGE ON SEQUENCE report_runs_id_seq TO insights_report;
