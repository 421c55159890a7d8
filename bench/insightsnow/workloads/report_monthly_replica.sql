-- Monthly report, "after", configuration (d): worker 1 of the report run with its reads on a
-- streaming replica. Connected through pglane's analytics lane, whose servers are the replica and the
-- primary: pglane sends a transaction to the replica only when it knows it cannot write (README
-- "Replica lanes"), everything else to the primary. So the job is split by what each step does:
--   1. the run's row in report_runs (a write, autocommit): primary;
--   2. the aggregates, as ONE autocommit SELECT that is read-only by the grammar (no temp tables, no
--      session state): replica. Its result, the month's report rows, comes back as one jsonb value;
--   3. the rows replace the month's reports rows in one short transaction: primary (2,000 rows).
-- Same numbers as report_monthly_after.sql (the runner checks rows and hash against the base tables
-- and against the other configurations). psql -v period=2025-06-01, application_name=report-monthly.
\if :{?period}
\else
\set period 2025-06-01
\endif
\set ON_ERROR_STOP 1

INSERT INTO report_runs (period) VALUES (:'period') RETURNING id AS run_id \gset

SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.account_id), '[]'::jsonb) AS report_rows,
       count(*) AS report_nrows, pg_is_in_recovery() AS read_on_standby
FROM (
    WITH r_types AS (
        SELECT e.account_id, e.event_type, count(*) AS n,
               coalesce(sum((e.payload->>'amount_cents')::bigint) FILTER (WHERE e.event_type = 'purchase'), 0) AS revenue_cents
        FROM events e JOIN users u ON u.id = e.user_id AND u.account_id = e.account_id
        WHERE e.occurred_at >= (:'period'::date)::timestamp AT TIME ZONE 'UTC'
          AND e.occurred_at <  (:'period'::date + interval '1 month') AT TIME ZONE 'UTC'
        GROUP BY e.account_id, e.event_type
    ), r_users AS (
        SELECT account_id,
               count(*) FILTER (WHERE cur)          AS active_users,
               count(*) FILTER (WHERE cur AND prev) AS retained_users
        FROM (SELECT account_id, user_id,
                     bool_or(occurred_at >= (:'period'::date)::timestamp AT TIME ZONE 'UTC') AS cur,
                     bool_or(occurred_at <  (:'period'::date)::timestamp AT TIME ZONE 'UTC') AS prev
              FROM events
              WHERE occurred_at >= (:'period'::date - interval '1 month') AT TIME ZONE 'UTC'
                AND occurred_at <  (:'period'::date + interval '1 month') AT TIME ZONE 'UTC'
              GROUP BY account_id, user_id) y
        GROUP BY account_id
    )
    SELECT t.account_id, :'period'::date AS period, t.events, u.active_users, u.retained_users,
           coalesce(d.n, 0) AS dashboards, t.purchases, t.revenue_cents, top.event_type AS top_event_type,
           t.by_type
    FROM (SELECT account_id, sum(n)::bigint AS events,
                 coalesce(sum(n) FILTER (WHERE event_type = 'purchase'), 0)::bigint AS purchases,
                 sum(revenue_cents)::bigint AS revenue_cents,
                 jsonb_object_agg(event_type, n) AS by_type
          FROM r_types GROUP BY account_id) t
    JOIN r_users u USING (account_id)
    JOIN (SELECT DISTINCT ON (account_id) account_id, event_type
          FROM r_types ORDER BY account_id, n DESC, event_type) top USING (account_id)
    LEFT JOIN (SELECT account_id, count(*) AS n FROM dashboards GROUP BY account_id) d USING (account_id)
) x
\gset
\echo report: :report_nrows rows aggregated, read on a standby: :read_on_standby

BEGIN;
DELETE FROM reports WHERE period = :'period';
INSERT INTO reports (account_id, period, events, active_users, retained_users, dashboards,
                     purchases, revenue_cents, top_event_type, by_type)
SELECT account_id, period, events, active_users, retained_users, dashboards,
       purchases, revenue_cents, top_event_type, by_type
FROM jsonb_populate_recordset(NULL::reports, :'report_rows'::jsonb);
UPDATE report_runs SET finished_at = now(), status = 'done',
       accounts = (SELECT count(*) FROM reports WHERE period = :'period')
WHERE id = :run_id;
COMMIT;
