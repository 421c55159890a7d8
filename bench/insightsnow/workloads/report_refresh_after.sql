-- Monthly report, "after": worker 2 of the report run (maintenance and the dashboards' view).
-- As insights_report (lock_timeout 200 ms from migration 002 and from pglane's analytics lane).
--   * DDL it still needs: next months' partitions of events. events_ensure_partitions() only ATTACHes
--     (SHARE UPDATE EXCLUSIVE on events: inserts and reads carry on). If anything holds a conflicting
--     lock, the 200 ms lock_timeout makes it give up instead of queueing in front of OLTP, and this
--     step retries with a growing pause, so the run still completes.
--   * the reported month's days in dashboard_daily_closed are recomputed from that month's partition
--     (one short transaction; readers see old or new rows, never a gap);
--   * REFRESH MATERIALIZED VIEW CONCURRENTLY dashboard_daily_open (the open month only): dashboards
--     keep reading the old contents meanwhile (EXCLUSIVE on the view conflicts only with another
--     refresh); retried the same way on lock_timeout.
\if :{?period}
\else
\set period 2025-06-01
\endif
\set ON_ERROR_STOP 1
DO $$
DECLARE
    tries int := 0;
    made  int;
BEGIN
    LOOP
        BEGIN
            made := events_ensure_partitions(current_date, (current_date + interval '3 months')::date);
            RAISE NOTICE 'report: % new partition(s) after % lock timeout(s)', made, tries;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            tries := tries + 1;
            IF tries >= 40 THEN RAISE; END IF;
            RAISE NOTICE 'report: partition DDL hit lock_timeout (try %), retrying', tries;
            PERFORM pg_sleep(least(3.0, 0.1 * tries));
        END;
    END LOOP;
END $$;

SELECT dashboard_recompute_month(:'period') AS closed_rows_recomputed;

DO $$
DECLARE
    tries int := 0;
BEGIN
    LOOP
        BEGIN
            REFRESH MATERIALIZED VIEW CONCURRENTLY dashboard_daily_open;
            RAISE NOTICE 'report: dashboard_daily_open refreshed concurrently after % lock timeout(s)', tries;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            tries := tries + 1;
            IF tries >= 40 THEN RAISE; END IF;
            RAISE NOTICE 'report: refresh hit lock_timeout (try %), retrying', tries;
            PERFORM pg_sleep(least(3.0, 0.1 * tries));
        END;
    END LOOP;
END $$;
