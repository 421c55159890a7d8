-- 005: the dashboards' daily series becomes closed history + a small materialized view of the open
-- month, refreshed CONCURRENTLY; dashboard_daily keeps its name and columns (now a view).
-- Measured problems it removes (README "Findings"):
--   * REFRESH MATERIALIZED VIEW dashboard_daily (not CONCURRENTLY) took ACCESS EXCLUSIVE on the view
--     for the whole refresh: every dashboard page load waited (relation lock waits on
--     dashboard_daily, blocked by the report job's REFRESH);
--   * that refresh recomputed every month of events (a sort of all rows for count(DISTINCT user_id))
--     although only the open month changes; even CONCURRENTLY it cost ~1 core for tens of seconds
--     at SCALE=1 on this box (auto_explain), i.e. CPU taken from OLTP;
--   * the dashboards read the view by account_id with a sequential scan (no index at all).
-- Design / refresh strategy (README "Refresh strategy"):
--   dashboard_daily_closed   table, one row per (account, day) for days before the watermark;
--                            written once when a month closes (dashboard_close_through) or when a
--                            closed month is corrected (dashboard_recompute_month); PK (account_id, day)
--   dashboard_daily_open     materialized view over events since the watermark (the current month's
--                            partition only, by run-time partition pruning); unique index
--                            (account_id, day), so REFRESH ... CONCURRENTLY: readers never wait;
--                            refreshed every 15 minutes and by the monthly report run
--   dashboard_daily          view: closed UNION ALL open, what dashboard_read.sql reads
-- Measured in run 1, config (c): dashboard_recompute_month replaces a month of closed rows
-- (DELETE + INSERT); autovacuum then truncated the empty tail of dashboard_daily_closed under
-- ACCESS EXCLUSIVE and 10 dashboard reads waited up to 0.85 s. vacuum_truncate = off (as for reports
-- in 006): the freed pages are reused by the next recompute instead of being given back.
-- Ownership: the open view belongs to insights_report (only an owner may refresh); the functions are
-- SECURITY DEFINER of insightsuser. Idempotent.
SET statement_timeout = 0;
SET lock_timeout = '10s';
SET work_mem = '256MB';
SET ROLE insightsuser;

CREATE TABLE IF NOT EXISTS dashboard_daily_watermark (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    open_from timestamptz NOT NULL        -- days from here on are in dashboard_daily_open
);
INSERT INTO dashboard_daily_watermark (open_from)
VALUES (date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS dashboard_daily_closed (
    account_id    bigint NOT NULL REFERENCES accounts (id),
    day           date   NOT NULL,
    events        bigint NOT NULL,
    users         bigint NOT NULL,
    purchases     bigint NOT NULL,
    revenue_cents bigint NOT NULL,
    PRIMARY KEY (account_id, day)
);
ALTER TABLE dashboard_daily_closed SET (vacuum_truncate = off);

-- The one definition of a day's numbers, used by the closed table and the open view alike.
CREATE OR REPLACE FUNCTION dashboard_days(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (account_id bigint, day date, events bigint, users bigint, purchases bigint, revenue_cents bigint)
LANGUAGE sql STABLE AS $$
    SELECT e.account_id, (e.occurred_at AT TIME ZONE 'UTC')::date, count(*), count(DISTINCT e.user_id),
           count(*) FILTER (WHERE e.event_type = 'purchase'),
           coalesce(sum((e.payload->>'amount_cents')::bigint) FILTER (WHERE e.event_type = 'purchase'), 0)
    FROM events e
    WHERE e.occurred_at >= p_from AND e.occurred_at < p_to
    GROUP BY 1, 2
$$;

-- Recompute one closed month (a correction, or the monthly report's close): one partition's scan,
-- replaced in one transaction; readers see the old rows or the new ones, never a gap.
CREATE OR REPLACE FUNCTION dashboard_recompute_month(p_month date) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    lo timestamptz := date_trunc('month', p_month)::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', p_month) + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    n  bigint;
BEGIN
    IF hi > (SELECT open_from FROM dashboard_daily_watermark) THEN
        RAISE EXCEPTION 'month % is not closed yet (dashboard_daily_open covers it)', p_month;
    END IF;
    DELETE FROM dashboard_daily_closed WHERE day >= p_month AND day < (p_month + interval '1 month')::date;
    INSERT INTO dashboard_daily_closed SELECT * FROM dashboard_days(lo, hi);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Close everything before p_until: copy those days into the closed table and move the watermark
-- (then the next concurrent refresh drops them from the open view). Run on the 1st of a month.
CREATE OR REPLACE FUNCTION dashboard_close_through(p_until timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    w timestamptz;
    n bigint := 0;
BEGIN
    SELECT open_from INTO w FROM dashboard_daily_watermark FOR UPDATE;
    IF p_until > w THEN
        INSERT INTO dashboard_daily_closed SELECT * FROM dashboard_days(w, p_until)
        ON CONFLICT (account_id, day) DO UPDATE SET events = EXCLUDED.events, users = EXCLUDED.users,
            purchases = EXCLUDED.purchases, revenue_cents = EXCLUDED.revenue_cents;
        GET DIAGNOSTICS n = ROW_COUNT;
        UPDATE dashboard_daily_watermark SET open_from = p_until;
    END IF;
    RETURN n;
END $$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dashboard_daily_closed) THEN
        INSERT INTO dashboard_daily_closed
        SELECT * FROM dashboard_days('-infinity', (SELECT open_from FROM dashboard_daily_watermark));
    END IF;
    IF to_regclass('dashboard_daily_open') IS NULL THEN
        CREATE MATERIALIZED VIEW dashboard_daily_open AS
        SELECT e.account_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
               count(*) AS events, count(DISTINCT e.user_id) AS users,
               count(*) FILTER (WHERE e.event_type = 'purchase') AS purchases,
               coalesce(sum((e.payload->>'amount_cents')::bigint) FILTER (WHERE e.event_type = 'purchase'), 0) AS revenue_cents
        FROM events e
        WHERE e.occurred_at >= (SELECT open_from FROM dashboard_daily_watermark)
        GROUP BY 1, 2;
    END IF;
END $$;
CREATE OR REPLACE VIEW dashboard_daily AS
SELECT account_id, day, events, users, purchases, revenue_cents FROM dashboard_daily_closed
UNION ALL
SELECT account_id, day, events, users, purchases, revenue_cents FROM dashboard_daily_open;

RESET ROLE;
CREATE UNIQUE INDEX IF NOT EXISTS dashboard_daily_open_key ON dashboard_daily_open (account_id, day);
ALTER MATERIALIZED VIEW dashboard_daily_open OWNER TO insights_report;
GRANT SELECT ON dashboard_daily_open TO insightsuser;
GRANT SELECT ON dashboard_daily, dashboard_daily_closed, dashboard_daily_watermark TO insights_report;
GRANT EXECUTE ON FUNCTION dashboard_recompute_month(date), dashboard_close_through(timestamptz) TO insights_report;
REVOKE EXECUTE ON FUNCTION dashboard_recompute_month(date), dashboard_close_through(timestamptz) FROM PUBLIC;
ANALYZE dashboard_daily_closed;
ANALYZE dashboard_daily_open;
