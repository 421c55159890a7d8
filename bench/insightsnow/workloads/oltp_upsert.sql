-- Event API, "before": idempotent event upsert plus the per-account counter the app keeps, in one
-- transaction. Every upsert updates its account's row in accounts: the big tenants' rows are hot.
-- pgbench -D naccounts=N -D keyspace=K: keys api-1..api-K, so some upserts are retries of a key.
\set aid least(:naccounts, 1 + int(:naccounts * pow(random(0, 999999) / 1000000.0, 3) - 0.5))
\set uid (:aid - 1) * 50 + random(1, 50)
\set key random(1, :keyspace)
\set t random(1, 12)
\set amount random(500, 20500)
BEGIN;
INSERT INTO events (account_id, user_id, event_type, idempotency_key, occurred_at, payload)
VALUES (:aid, :uid,
        (ARRAY['page_view','page_view','page_view','page_view','click','click','search','signup','login','login','purchase','error'])[:t],
        'api-' || :key, now(),
        jsonb_build_object('page', '/p/' || :key % 400, 'device', 'web', 'amount_cents', :amount))
ON CONFLICT (account_id, idempotency_key)
DO UPDATE SET payload = EXCLUDED.payload, updated_at = now()
RETURNING (updated_at IS NULL)::int AS inserted \gset
UPDATE accounts SET event_count = event_count + :inserted, last_event_at = now() WHERE id = :aid;
COMMIT;
