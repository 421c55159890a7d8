-- 007: the rows the migrations moved are vacuumed before the application comes back.
-- Measured problem it removes (2026-12-07, config (b), the first configuration after the migrations
-- and the restart): 003 rewrites events and event_keys (3 million rows each at SCALE=1) and analyzes
-- them, but nothing marks their pages all-visible, so autovacuum's insert-triggered pass did it under
-- the application's load: "automatic vacuum of table event_keys" wrote 22,061 pages in 1.2 s within
-- the first 10 s of (b)'s timeline, in every run, while (b) was being measured (and (c), which runs
-- later, never met it). A bulk move is followed by VACUUM, as after a restore; it also lets
-- index-only scans skip the heap from the start. VACUUM cannot run in a transaction block: psql -f
-- runs each statement on its own. Idempotent.
VACUUM (ANALYZE) events;
VACUUM (ANALYZE) event_keys;
