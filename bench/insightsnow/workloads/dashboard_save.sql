-- Dashboard save: bump one dashboard's config version.
\set aid least(:naccounts, 1 + int(:naccounts * pow(random(0, 999999) / 1000000.0, 3) - 0.5))
\set k random(1, 5)
UPDATE dashboards
SET config = jsonb_set(config, '{version}', to_jsonb(coalesce((config->>'version')::int, 0) + 1)),
    updated_at = now()
WHERE id = (:aid - 1) * 5 + :k;
