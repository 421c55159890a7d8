-- InsightsNow "before" schema: what the naive original system looks like.
-- Deliberately kept as found (the migrations in migrations/ fix it, each naming the problem):
--   * events is one unpartitioned heap holding every month; the only index besides the primary key
--     is the idempotency-key unique constraint the event API's ON CONFLICT needs;
--   * no foreign keys, no index on events(occurred_at), dashboards(account_id), reports(account_id);
--   * accounts.event_count is a per-account counter the event API updates in the same transaction
--     as every upsert: one hot row per tenant, and the biggest tenants take most of the traffic;
--   * the report job marks accounts.report_status on the same hot rows;
--   * dashboard_daily is a materialized view without a unique index, so it can only be refreshed
--     non-concurrently (ACCESS EXCLUSIVE for the whole refresh).
--   * one role, insightsuser, owns everything and runs everything: the event API, the dashboards
--     and the monthly report job (which therefore may run DDL on the OLTP tables).
-- Run as a superuser in database insightsnowdb, created with OWNER insightsuser:
--   CREATE ROLE insightsuser LOGIN PASSWORD 'insightspass';
--   CREATE DATABASE insightsnowdb OWNER insightsuser;

CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SET ROLE insightsuser;

CREATE TABLE accounts (
    id                bigint PRIMARY KEY,
    name              text NOT NULL,
    plan              text NOT NULL,
    created_at        timestamptz NOT NULL,
    event_count       bigint NOT NULL DEFAULT 0,     -- kept up to date by the event API (hot row)
    last_event_at     timestamptz,
    report_status     text,                          -- set by the monthly report job
    report_started_at timestamptz
);

CREATE TABLE users (
    id         bigint PRIMARY KEY,
    account_id bigint NOT NULL,
    email      text NOT NULL,
    role       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE events (
    id              bigserial PRIMARY KEY,
    account_id      bigint NOT NULL,
    user_id         bigint NOT NULL,
    event_type      text NOT NULL,
    idempotency_key text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz,
    payload         jsonb NOT NULL,
    CONSTRAINT events_idempotency UNIQUE (account_id, idempotency_key)
);

CREATE TABLE dashboards (
    id         bigint PRIMARY KEY,
    account_id bigint NOT NULL,
    name       text NOT NULL,
    config     jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE reports (
    id             bigserial PRIMARY KEY,
    account_id     bigint NOT NULL,
    period         date NOT NULL,          -- first day of the reported month
    events         bigint NOT NULL,
    active_users   bigint NOT NULL,
    retained_users bigint NOT NULL,        -- active this month and the month before
    dashboards     bigint NOT NULL,
    purchases      bigint NOT NULL,
    revenue_cents  bigint NOT NULL,
    top_event_type text,
    by_type        jsonb NOT NULL,
    generated_at   timestamptz NOT NULL DEFAULT now()
);

-- What the dashboards read: events, active users and revenue per account and day.
CREATE MATERIALIZED VIEW dashboard_daily AS
SELECT account_id,
       (occurred_at AT TIME ZONE 'UTC')::date                        AS day,
       count(*)                                                      AS events,
       count(DISTINCT user_id)                                       AS users,
       count(*) FILTER (WHERE event_type = 'purchase')               AS purchases,
       coalesce(sum((payload->>'amount_cents')::bigint)
                FILTER (WHERE event_type = 'purchase'), 0)           AS revenue_cents
FROM events
GROUP BY 1, 2
WITH NO DATA;

