-- Deterministic, set-based InsightsNow data: psql -v SCALE=1 -f generate.sql (after schema.sql).
-- SCALE=1: 2,000 accounts, 100,000 users, 10,000 dashboards, 3,000,000 events from 2025-01-01 to
-- 2025-06-30 (UTC). Every "random" choice is a hash of the row number (hashint8 with a salt), so the
-- same SCALE always yields byte-identical data, whatever the plan or the number of workers.
-- Tenants are skewed: account k receives events with probability ~ d/dk (k/N)^(1/3), so account 1
-- takes ~8% of all events and the top 10 accounts ~17%, like the big customers of a real SaaS.

\if :{?SCALE}
\else
\set SCALE 1
\endif

SELECT greatest(10, round(2000 * :SCALE))::int      AS naccounts,
       greatest(1000, round(3000000 * :SCALE))::int AS nevents
\gset
\echo generating :naccounts accounts, :nevents events

-- u(i, salt): a uniform number in [0, 1) derived from i; pure and parallel safe.
CREATE OR REPLACE FUNCTION pg_temp.u(i bigint, salt int) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8(i * 1000003 + salt)::float8 + 2147483648.0) / 4294967296.0 $$;

BEGIN;

INSERT INTO accounts (id, name, plan, created_at, event_count)
SELECT i,
       'account-' || i,
       CASE WHEN i <= 20 OR i % 50 = 0 THEN 'enterprise' WHEN i % 4 = 0 THEN 'pro' ELSE 'free' END,
       timestamptz '2023-01-01 00:00+00' + (i % 700) * interval '1 day',
       0
FROM generate_series(1, :naccounts) AS i;

-- 50 users per account: user (a-1)*50 + k, k in 1..50.
INSERT INTO users (id, account_id, email, role, created_at)
SELECT (a - 1) * 50 + k,
       a,
       'user' || k || '@account-' || a || '.example',
       CASE WHEN k = 1 THEN 'owner' WHEN k <= 5 THEN 'admin' ELSE 'member' END,
       timestamptz '2024-01-01 00:00+00' + ((a * 50 + k) % 365) * interval '1 day'
FROM generate_series(1, :naccounts) AS a, generate_series(1, 50) AS k;

-- 5 dashboards per account: dashboard (a-1)*5 + k.
INSERT INTO dashboards (id, account_id, name, config, updated_at)
SELECT (a - 1) * 5 + k,
       a,
       (ARRAY['Overview', 'Revenue', 'Funnel', 'Retention', 'Live'])[k],
       jsonb_build_object('widgets', k * 3, 'range_days', 30, 'version', 1),
       timestamptz '2025-01-01 00:00+00'
FROM generate_series(1, :naccounts) AS a, generate_series(1, 5) AS k;

-- Load first, index afterwards (the constraints are put back exactly as schema.sql defines them).
ALTER TABLE events DROP CONSTRAINT events_idempotency, DROP CONSTRAINT events_pkey;

INSERT INTO events (id, account_id, user_id, event_type, idempotency_key, occurred_at, received_at, payload)
SELECT i,
       g.account_id,
       (g.account_id - 1) * 50 + 1 + floor(pg_temp.u(i, 2) * 50)::int,
       g.event_type,
       'gen-' || i,
       g.occurred_at,
       g.occurred_at + interval '2 seconds',
       CASE WHEN g.event_type = 'purchase' THEN
            jsonb_build_object('page', '/checkout', 'device', g.device,
                               'amount_cents', 500 + floor(pg_temp.u(i, 5) * 20000)::int,
                               'currency', 'USD')
       ELSE jsonb_build_object('page', '/p/' || floor(pg_temp.u(i, 6) * 400)::int, 'device', g.device,
                               'duration_ms', floor(pg_temp.u(i, 7) * 30000)::int)
       END
FROM generate_series(1, :nevents) AS i
CROSS JOIN LATERAL (
    SELECT 1 + least(:naccounts - 1, floor(:naccounts * power(pg_temp.u(i, 1), 3))::int) AS account_id,
           (ARRAY['page_view', 'page_view', 'page_view', 'page_view', 'click', 'click', 'search',
                  'signup', 'login', 'login', 'purchase', 'error'])[1 + floor(pg_temp.u(i, 3) * 12)::int]
               AS event_type,
           timestamptz '2025-01-01 00:00+00' + floor(pg_temp.u(i, 4) * 181 * 86400) * interval '1 second'
               AS occurred_at,
           (ARRAY['web', 'web', 'ios', 'android'])[1 + floor(pg_temp.u(i, 8) * 4)::int] AS device
) AS g;

SET maintenance_work_mem = '512MB';
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id),
                   ADD CONSTRAINT events_idempotency UNIQUE (account_id, idempotency_key);
SELECT setval('events_id_seq', :nevents);

-- The application's counter starts out exact.
UPDATE accounts a SET event_count = c.n, last_event_at = c.last
FROM (SELECT account_id, count(*) AS n, max(occurred_at) AS last FROM events GROUP BY account_id) c
WHERE a.id = c.account_id;

COMMIT;

REFRESH MATERIALIZED VIEW dashboard_daily;
VACUUM (ANALYZE) accounts, users, dashboards, events;
