-- Dashboard page load: the account's dashboards, this month's daily series from the dashboards'
-- materialized view, and the latest monthly report. Three autocommit statements, as the app sends them.
\set aid least(:naccounts, 1 + int(:naccounts * pow(random(0, 999999) / 1000000.0, 3) - 0.5))
SELECT id, name, config FROM dashboards WHERE account_id = :aid ORDER BY id;
SELECT day, events, users, purchases, revenue_cents FROM dashboard_daily
WHERE account_id = :aid AND day >= date '2025-06-01' ORDER BY day;
SELECT period, events, active_users, revenue_cents, top_event_type FROM reports
WHERE account_id = :aid ORDER BY period DESC LIMIT 1;
