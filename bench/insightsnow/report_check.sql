-- Accuracy of the monthly report: the rows in reports for :period, against the same numbers computed
-- straight from the base tables (events, dashboards), in a formulation of its own. Prints one row:
-- report rows, expected rows, hash of each (md5 over the rows in account order) and whether they
-- are equal. The hash of the report rows is what the runner compares across configurations.
-- psql -v period=2025-06-01 -f report_check.sql
\if :{?period}
\else
\set period 2025-06-01
\endif
WITH bounds AS (
    SELECT (:'period'::date)::timestamp AT TIME ZONE 'UTC'                       AS lo,
           (:'period'::date + interval '1 month') AT TIME ZONE 'UTC'             AS hi,
           (:'period'::date - interval '1 month') AT TIME ZONE 'UTC'             AS prev_lo
),
month AS (
    SELECT e.account_id, e.user_id, e.event_type, e.payload
    FROM events e, bounds b WHERE e.occurred_at >= b.lo AND e.occurred_at < b.hi
),
per_type AS (
    SELECT account_id, event_type, count(*) AS n FROM month GROUP BY 1, 2
),
retained AS (
    SELECT account_id, count(*) AS n
    FROM (SELECT account_id, user_id FROM month
          INTERSECT
          SELECT e.account_id, e.user_id FROM events e, bounds b
          WHERE e.occurred_at >= b.prev_lo AND e.occurred_at < b.lo) x
    GROUP BY account_id
),
top_type AS (
    SELECT DISTINCT ON (account_id) account_id, event_type FROM per_type ORDER BY account_id, n DESC, event_type
),
type_json AS (
    SELECT account_id, jsonb_object_agg(event_type, n) AS by_type FROM per_type GROUP BY account_id
),
dash AS (
    SELECT account_id, count(*) AS n FROM dashboards GROUP BY account_id
),
expected AS (
    SELECT s.account_id, s.events, s.active_users, coalesce(r.n, 0) AS retained_users,
           coalesce(d.n, 0) AS dashboards, s.purchases, s.revenue_cents, tt.event_type AS top_event_type,
           tj.by_type
    FROM (SELECT account_id,
                 count(*)                                          AS events,
                 count(DISTINCT user_id)                           AS active_users,
                 count(*) FILTER (WHERE event_type = 'purchase')   AS purchases,
                 coalesce(sum((payload->>'amount_cents')::bigint) FILTER (WHERE event_type = 'purchase'), 0) AS revenue_cents
          FROM month GROUP BY account_id) s
    LEFT JOIN retained r USING (account_id)
    LEFT JOIN dash d USING (account_id)
    JOIN top_type tt USING (account_id)
    JOIN type_json tj USING (account_id)
),
exp_hash AS (
    SELECT count(*) AS n,
           md5(string_agg(concat_ws('|', account_id, events, active_users, retained_users, dashboards,
                                    purchases, revenue_cents, top_event_type, by_type::text),
                          E'\n' ORDER BY account_id)) AS h
    FROM expected
),
rep_hash AS (
    SELECT count(*) AS n,
           md5(string_agg(concat_ws('|', account_id, events, active_users, retained_users, dashboards,
                                    purchases, revenue_cents, top_event_type, by_type::text),
                          E'\n' ORDER BY account_id)) AS h
    FROM reports WHERE period = :'period'
)
SELECT r.n AS report_rows, e.n AS expected_rows, r.h AS report_hash, e.h AS expected_hash,
       (r.n = e.n AND r.h = e.h) AS accurate
FROM rep_hash r, exp_hash e;
