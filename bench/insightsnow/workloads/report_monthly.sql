-- Monthly report, "before": worker 1 of the report run, as the original job did it.
-- psql -v period=2025-06-01 -f report_monthly.sql   (connect with application_name=report-monthly)
-- Runs as insightsuser, the owner of everything, like the original job.
-- What makes it hurt OLTP (see README "Findings"):
--   (1) it marks every account row 'running' first and keeps those row locks until COMMIT, while it
--       aggregates for many seconds: every event upsert's counter UPDATE on accounts waits;
--   (4) its aggregates scan all of events (a non-sargable date_trunc filter on an unpartitioned
--       table) with as many parallel workers as the server allows, three times.
-- It also holds ACCESS SHARE on dashboards (it counts them) for the whole transaction, which is what
-- worker 2's ALTER TABLE dashboards queues behind.
\if :{?period}
\else
\set period 2025-06-01
\endif
\set ON_ERROR_STOP 1
BEGIN;
UPDATE accounts SET report_status = 'running', report_started_at = now();
DELETE FROM reports WHERE period = :'period';

CREATE TEMP TABLE r_summary ON COMMIT DROP AS
SELECT e.account_id,
       count(*)                                                            AS events,
       count(DISTINCT e.user_id)                                           AS active_users,
       count(*) FILTER (WHERE e.event_type = 'purchase')                   AS purchases,
       coalesce(sum((e.payload->>'amount_cents')::bigint)
                FILTER (WHERE e.event_type = 'purchase'), 0)               AS revenue_cents
FROM events e JOIN users u ON u.id = e.user_id AND u.account_id = e.account_id
WHERE date_trunc('month', e.occurred_at AT TIME ZONE 'UTC') = :'period'::date
GROUP BY e.account_id;

CREATE TEMP TABLE r_types ON COMMIT DROP AS
SELECT account_id, event_type, count(*) AS n
FROM events
WHERE date_trunc('month', occurred_at AT TIME ZONE 'UTC') = :'period'::date
GROUP BY account_id, event_type;

CREATE TEMP TABLE r_retained ON COMMIT DROP AS
SELECT cur.account_id, count(*) AS retained_users
FROM (SELECT DISTINCT account_id, user_id FROM events
      WHERE date_trunc('month', occurred_at AT TIME ZONE 'UTC') = :'period'::date) cur
JOIN (SELECT DISTINCT account_id, user_id FROM events
      WHERE date_trunc('month', occurred_at AT TIME ZONE 'UTC') = :'period'::date - interval '1 month') prev
  USING (account_id, user_id)
GROUP BY cur.account_id;

INSERT INTO reports (account_id, period, events, active_users, retained_users, dashboards,
                     purchases, revenue_cents, top_event_type, by_type)
SELECT s.account_id, :'period'::date, s.events, s.active_users, coalesce(r.retained_users, 0),
       (SELECT count(*) FROM dashboards d WHERE d.account_id = s.account_id),
       s.purchases, s.revenue_cents,
       (SELECT t.event_type FROM r_types t WHERE t.account_id = s.account_id
        ORDER BY t.n DESC, t.event_type LIMIT 1),
       (SELECT jsonb_object_agg(t.event_type, t.n) FROM r_types t WHERE t.account_id = s.account_id)
FROM r_summary s LEFT JOIN r_retained r USING (account_id);

UPDATE accounts SET report_status = 'done';
COMMIT;
