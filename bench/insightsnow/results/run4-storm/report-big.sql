\set ON_ERROR_STOP 1
\! echo SUBMIT $(date +%s.%N)
BEGIN;
/* pglane tenant=big */ SELECT extract(epoch FROM clock_timestamp()) AS t_start \gset
SELECT count(*) AS type_rows, sum(n) AS events, sum(revenue_cents) AS revenue_cents
FROM (SELECT e.account_id, e.event_type, count(*) AS n,
             coalesce(sum((e.payload->>'amount_cents')::bigint) FILTER (WHERE e.event_type = 'purchase'), 0) AS revenue_cents
      FROM events e JOIN users u ON u.id = e.user_id AND u.account_id = e.account_id
      WHERE e.occurred_at >= ('2025-06-01'::date)::timestamp AT TIME ZONE 'UTC'
        AND e.occurred_at <  ('2025-06-01'::date + interval '1 month') AT TIME ZONE 'UTC'
      GROUP BY e.account_id, e.event_type) t;
SELECT count(*) AS accounts, sum(active_users) AS active, sum(retained_users) AS retained
FROM (SELECT account_id, count(*) FILTER (WHERE cur) AS active_users, count(*) FILTER (WHERE cur AND prev) AS retained_users
      FROM (SELECT account_id, user_id,
                   bool_or(occurred_at >= ('2025-06-01'::date)::timestamp AT TIME ZONE 'UTC') AS cur,
                   bool_or(occurred_at <  ('2025-06-01'::date)::timestamp AT TIME ZONE 'UTC') AS prev
            FROM events
            WHERE occurred_at >= ('2025-06-01'::date - interval '1 month') AT TIME ZONE 'UTC'
              AND occurred_at <  ('2025-06-01'::date + interval '1 month') AT TIME ZONE 'UTC'
            GROUP BY account_id, user_id) x
      GROUP BY account_id) y;
SELECT extract(epoch FROM clock_timestamp()) AS t_end \gset
COMMIT;
\echo STORM :t_start :t_end
