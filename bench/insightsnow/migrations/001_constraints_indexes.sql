-- 001: indexes for the paths the workload runs, foreign keys with their supporting indexes, constraints.
-- Measured problems it removes (README "Findings"):
--   * dashboard_read.sql: "dashboards WHERE account_id = $1" and "reports WHERE account_id = $1
--     ORDER BY period DESC LIMIT 1" were sequential scans on every page load (pg_stat_statements:
--     the two most expensive read statements of config (a) per call);
--   * nothing stopped a report row for an unknown account, two reports for one month, a user or a
--     dashboard of a deleted account.
-- Only indexes the workload uses: no index on events(user_id) (no path reads events by user) and no
-- index on events(occurred_at) (the monthly report reads whole month partitions, migration 003).
-- The events foreign key is added by 003 together with the partitioned table.
-- Idempotent: every step checks the catalog first. Run as superuser: psql -f 001_....sql.
SET statement_timeout = 0;
SET lock_timeout = '10s';

CREATE INDEX IF NOT EXISTS dashboards_account_id_idx ON dashboards (account_id);   -- dashboard reads; FK support
CREATE INDEX IF NOT EXISTS users_account_id_idx ON users (account_id);             -- FK support (account deletes)

DO $$
BEGIN
    -- One report per account and month; serves "latest report of an account" and the report's
    -- DELETE ... WHERE period = $1 is then an index range too (period is the second column, but the
    -- delete touches 1/6 of a small table; measured: not worth another index).
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'reports_account_period_key') THEN
        ALTER TABLE reports ADD CONSTRAINT reports_account_period_key UNIQUE (account_id, period);
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'users_account_id_fkey') THEN
        ALTER TABLE users ADD CONSTRAINT users_account_id_fkey
            FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID;
        ALTER TABLE users VALIDATE CONSTRAINT users_account_id_fkey;      -- SHARE UPDATE EXCLUSIVE only
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'dashboards_account_id_fkey') THEN
        ALTER TABLE dashboards ADD CONSTRAINT dashboards_account_id_fkey
            FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID;
        ALTER TABLE dashboards VALIDATE CONSTRAINT dashboards_account_id_fkey;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'reports_account_id_fkey') THEN
        -- supported by reports_account_period_key (account_id leads)
        ALTER TABLE reports ADD CONSTRAINT reports_account_id_fkey
            FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID;
        ALTER TABLE reports VALIDATE CONSTRAINT reports_account_id_fkey;
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'accounts_plan_check') THEN
        ALTER TABLE accounts ADD CONSTRAINT accounts_plan_check
            CHECK (plan IN ('free', 'pro', 'enterprise')) NOT VALID;
        ALTER TABLE accounts VALIDATE CONSTRAINT accounts_plan_check;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'reports_counts_check') THEN
        ALTER TABLE reports ADD CONSTRAINT reports_counts_check
            CHECK (events >= 0 AND active_users >= 0 AND retained_users >= 0
                   AND retained_users <= active_users AND purchases >= 0 AND revenue_cents >= 0
                   AND period = date_trunc('month', period)) NOT VALID;
        ALTER TABLE reports VALIDATE CONSTRAINT reports_counts_check;
    END IF;
END $$;
