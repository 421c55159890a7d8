-- Monthly report, "after": worker 1 of the report run, rewritten (migrations 003-006).
-- psql -v period=2025-06-01 -f report_monthly_after.sql   as insights_report, application_name=report-monthly
-- What changed, and which measured problem each change removes (README "Findings"):
--   * no UPDATE of accounts: the run is one row in report_runs, in its own short transaction;
--   * the aggregates read only the month's partition (and the month before, for retention), with a
--     sargable range on occurred_at instead of date_trunc(...) = ..., so the planner prunes;
--   * one pass per question instead of three full scans; in-memory hash aggregates (work_mem 256MB
--     and one parallel worker come from the role, migration 002, and from pglane's analytics lane);
--   * the reports rows are replaced in one short transaction at the end: dashboards keep reading the
--     previous rows (MVCC) until it commits. No DDL, no lock on an OLTP row.
-- Produces exactly the rows the "before" job produced (checked by run and tests/insightsnow).
\if :{?period}
\else
\set period 2025-06-01
\endif
\set ON_ERROR_STOP 1

INSERT INTO report_runs (period) VALUES (:'period') RETURNING id AS run_id \gset

BEGIN;
CREATE TEMP TABLE r_types ON COMMIT DROP AS
SELECT e.account_id, e.event_type, count(*) AS n,
       coalesce(sum((e.payload->>'amount_cents')::bigint) FILTER (WHERE e.event_type = 'purchase'), 0) AS revenue_cents
FROM events e JOIN users u ON u.id = e.user_id AND u.account_id = e.account_id
WHERE e.occurred_at >= (:'period'::date)::timestamp AT TIME ZONE 'UTC'
  AND e.occurred_at <  (:'period'::date + interval '1 month') AT TIME ZONE 'UTC'
GROUP BY e.account_id, e.event_type;

CREATE TEMP TABLE r_users ON COMMIT DROP AS
SELECT account_id,
       count(*) FILTER (WHERE cur)          AS active_users,
       count(*) FILTER (WHERE cur AND prev) AS retained_users
FROM (SELECT account_id, user_id,
             bool_or(occurred_at >= (:'period'::date)::timestamp AT TIME ZONE 'UTC') AS cur,
             bool_or(occurred_at <  (:'period'::date)::timestamp AT TIME ZONE 'UTC') AS prev
      FROM events
      WHERE occurred_at >= (:'period'::date - interval '1 month') AT TIME ZONE 'UTC'
        AND occurred_at <  (:'period'::date + interval '1 month') AT TIME ZONE 'UTC'
      GROUP BY account_id, user_id) x
GROUP BY account_id;

DELETE FROM reports WHERE period = :'period';
INSERT INTO reports (account_id, period, events, active_users, retained_users, dashboards,
                     purchases, revenue_cents, top_event_type, by_type)
SELECT t.account_id, :'period'::date, t.events, u.active_users, u.retained_users,
       coalesce(d.n, 0), t.purchases, t.revenue_cents, top.event_type, t.by_type
FROM (SELECT account_id, sum(n)::bigint AS events,
             coalesce(sum(n) FILTER (WHERE event_type = 'purchase'), 0)::bigint AS purchases,
             sum(revenue_cents)::bigint AS revenue_cents,
             jsonb_object_agg(event_type, n) AS by_type
      FROM r_types GROUP BY account_id) t
JOIN r_users u USING (account_id)
JOIN (SELECT DISTINCT ON (account_id) account_id, event_type
      FROM r_types ORDER BY account_id, n DESC, event_type) top USING (account_id)
LEFT JOIN (SELECT account_id, count(*) AS n FROM dashboards GROUP BY account_id) d USING (account_id);

UPDATE report_runs SET finished_at = now(), status = 'done',
       accounts = (SELECT count(*) FROM reports WHERE period = :'period')
WHERE id = :run_id;
COMMIT;
