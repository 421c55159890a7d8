-- 003: events range-partitioned by month (UTC), with a default partition and a function that creates
-- future partitions; the idempotency key moves to event_keys.
-- Measured problems it removes (README "Findings"):
--   * every monthly report statement scanned all months of events (510 MB at SCALE=1) to keep one:
--     with partitions the planner prunes to the month (and the month before, for retention);
--   * the report job's CREATE INDEX on events (SHARE lock: no event insert for the whole build)
--     existed only to make that scan cheaper; it is not recreated;
--   * retention becomes DETACH/DROP of a month instead of a DELETE of millions of rows.
-- Why event_keys: a unique index on a partitioned table must contain the partition key, so
-- UNIQUE (account_id, idempotency_key) cannot stay on events. The business rule is "one event per
-- (account_id, idempotency_key)", whatever its occurred_at; event_keys holds exactly that key and
-- the event's occurred_at, and the event API (oltp_upsert_after.sql) claims the key there first.
-- events keeps UNIQUE (account_id, idempotency_key, occurred_at) as the ON CONFLICT arbiter, reached
-- with the occurred_at stored in event_keys, so a retry lands on the same row.
-- Migrating the rows: the old table is renamed, the partitioned one filled with INSERT ... SELECT,
-- indexes built afterwards; the row count and a content hash must match before the old table is
-- dropped (otherwise the migration raises and its transaction rolls back). At SCALE=1 this is the
-- slow step (see README); run it in a maintenance window or batch it for a live system.
-- Idempotent: nothing happens if events is already partitioned.
SET statement_timeout = 0;
SET lock_timeout = '10s';
SET maintenance_work_mem = '512MB';
SET max_parallel_maintenance_workers = 2;
SET ROLE insightsuser;

-- events_ensure_partitions(from, to): creates the monthly partitions covering [from, to] that do not
-- exist yet. Each one is created standalone, given a CHECK constraint matching its bounds and then
-- ATTACHed: ATTACH takes SHARE UPDATE EXCLUSIVE on events (inserts and reads carry on), where
-- CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE; the CHECK lets ATTACH skip validating
-- the new table. The default partition (empty in normal operation) is locked ACCESS EXCLUSIVE for
-- the moment ATTACH checks it. SECURITY DEFINER so the report role can call it without owning events;
-- it runs under the caller's lock_timeout, so a blocked ATTACH fails fast and the caller retries.
CREATE OR REPLACE FUNCTION events_ensure_partitions(p_from date, p_to date) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    m  date := date_trunc('month', p_from)::date;
    lo timestamptz;
    hi timestamptz;
    part text;
    made int := 0;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'events'::regclass) <> 'p' THEN
        RAISE EXCEPTION 'events is not partitioned yet';
    END IF;
    WHILE m <= p_to LOOP
        part := format('events_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
        lo := m::timestamp AT TIME ZONE 'UTC';
        hi := (m + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L)',
                           part, part || '_bounds', lo, hi);
            -- autovacuum per partition (a partitioned parent takes no storage parameters): the current
            -- month takes all inserts; vacuum and analyze it after 2% / 1% of changes, not 20% / 10%.
            EXECUTE format('ALTER TABLE %I SET (autovacuum_vacuum_scale_factor = 0.02, '
                           'autovacuum_analyze_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.05)', part);
            EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_bounds');
            made := made + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN made;
END $$;

DO $$
DECLARE
    lo date;
    hi date;
    n_old bigint;
    n_new bigint;
    h_old text;
    h_new text;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'events'::regclass) = 'p' THEN
        RAISE NOTICE '003: events is already partitioned, nothing to do';
        RETURN;
    END IF;

    -- The dashboards' view reads events; it is recreated on the new table by migration 005.
    DROP MATERIALIZED VIEW IF EXISTS dashboard_daily;

    ALTER TABLE events RENAME TO events_unpartitioned;
    ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_idempotency TO events_unpartitioned_idempotency;
    ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
    ALTER SEQUENCE events_id_seq OWNED BY NONE;

    CREATE TABLE events (
        id              bigint NOT NULL DEFAULT nextval('events_id_seq'),
        account_id      bigint NOT NULL,
        user_id         bigint NOT NULL,
        event_type      text NOT NULL,
        idempotency_key text NOT NULL,
        occurred_at     timestamptz NOT NULL,
        received_at     timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz,
        payload         jsonb NOT NULL
    ) PARTITION BY RANGE (occurred_at);
    ALTER SEQUENCE events_id_seq OWNED BY events.id;
    CREATE TABLE events_default PARTITION OF events DEFAULT;

    SELECT min(occurred_at AT TIME ZONE 'UTC')::date, max(occurred_at AT TIME ZONE 'UTC')::date
    INTO lo, hi FROM events_unpartitioned;
    -- every month holding data, and the current month plus three ahead for new events
    PERFORM events_ensure_partitions(least(coalesce(lo, current_date), current_date),
                                     greatest(coalesce(hi, current_date), (current_date + interval '3 months')::date));

    INSERT INTO events SELECT id, account_id, user_id, event_type, idempotency_key, occurred_at,
                              received_at, updated_at, payload
                       FROM events_unpartitioned;

    ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id, occurred_at);
    ALTER TABLE events ADD CONSTRAINT events_idempotency UNIQUE (account_id, idempotency_key, occurred_at);
    -- FK to accounts, supported by events_idempotency (account_id leads). There is deliberately no
    -- FK to users: it would need an index on events(user_id) that no workload reads.
    ALTER TABLE events ADD CONSTRAINT events_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id);
    ALTER TABLE events ADD CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object');

    CREATE TABLE event_keys (
        account_id      bigint NOT NULL,
        idempotency_key text NOT NULL,
        occurred_at     timestamptz NOT NULL,     -- the event's partition key, fixed by the first writer
        last_seen_at    timestamptz,              -- NULL until a retry of the key arrives
        PRIMARY KEY (account_id, idempotency_key)
    );
    INSERT INTO event_keys SELECT account_id, idempotency_key, occurred_at, updated_at FROM events_unpartitioned;

    -- Exactly the same rows, or no migration.
    -- (an order-independent hash: the sum of 60 bits of each row's md5)
    SELECT count(*), sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric)::text INTO n_old, h_old
    FROM (SELECT id, account_id, user_id, event_type, idempotency_key, occurred_at, received_at, updated_at, payload
          FROM events_unpartitioned) t;
    SELECT count(*), sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric)::text INTO n_new, h_new
    FROM (SELECT id, account_id, user_id, event_type, idempotency_key, occurred_at, received_at, updated_at, payload
          FROM events) t;
    IF n_old <> n_new OR h_old <> h_new THEN
        RAISE EXCEPTION '003: partitioned events differ from the original (% vs % rows)', n_new, n_old;
    END IF;
    IF (SELECT count(*) FROM event_keys) <> n_old THEN
        RAISE EXCEPTION '003: event_keys holds % rows, events %', (SELECT count(*) FROM event_keys), n_old;
    END IF;
    IF EXISTS (SELECT 1 FROM events_default) THEN
        RAISE EXCEPTION '003: rows fell into events_default';
    END IF;
    RAISE NOTICE '003: moved % rows into % partitions', n_new,
        (SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass);

    DROP TABLE events_unpartitioned;
END $$;

RESET ROLE;
GRANT EXECUTE ON FUNCTION events_ensure_partitions(date, date) TO insights_report;
REVOKE EXECUTE ON FUNCTION events_ensure_partitions(date, date) FROM PUBLIC;
GRANT SELECT ON events, event_keys, events_default TO insights_report;
ANALYZE events;
ANALYZE event_keys;
