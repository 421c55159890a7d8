-- Event API, "after" (migrations 003-004): the idempotency key lives in event_keys (a partitioned
-- table cannot have a unique index without its partition key), the event goes to its month's
-- partition, and the counter update hits one of 16 stripes of the account instead of its one row.
-- Same business rule as before: one event per (account_id, idempotency_key); a retry updates it.
\set aid least(:naccounts, 1 + int(:naccounts * pow(random(0, 999999) / 1000000.0, 3) - 0.5))
\set uid (:aid - 1) * 50 + random(1, 50)
\set key random(1, :keyspace)
\set t random(1, 12)
\set amount random(500, 20500)
\set stripe random(0, 15)
BEGIN;
INSERT INTO event_keys (account_id, idempotency_key, occurred_at)
VALUES (:aid, 'api-' || :key, now())
ON CONFLICT (account_id, idempotency_key) DO UPDATE SET last_seen_at = now()
RETURNING (last_seen_at IS NULL)::int AS inserted \gset
INSERT INTO events (account_id, user_id, event_type, idempotency_key, occurred_at, payload)
SELECT k.account_id, :uid,
       (ARRAY['page_view','page_view','page_view','page_view','click','click','search','signup','login','login','purchase','error'])[:t],
       k.idempotency_key, k.occurred_at,
       jsonb_build_object('page', '/p/' || :key % 400, 'device', 'web', 'amount_cents', :amount)
FROM event_keys k WHERE k.account_id = :aid AND k.idempotency_key = 'api-' || :key
ON CONFLICT (account_id, idempotency_key, occurred_at)
DO UPDATE SET payload = EXCLUDED.payload, updated_at = now();
UPDATE account_event_counters SET events = events + :inserted, last_event_at = now()
WHERE account_id = :aid AND stripe = :stripe;
COMMIT;
