{{ config(materialized='view') }}
-- identity_health: the identity graph at a glance, one row per measure.
--   section 'summary'              profiles, identifiers, rejections, largest profile
--   section 'profile_size'         how many profiles hold 1, 2, 3-5, … identifiers
--   section 'identifiers_by_type'  identifiers per type
--   section 'rejections_by_rule'   what was rejected, by rule
--   section 'largest_profiles'     the 10 profiles with the most identifiers
-- A view: it costs nothing to build and is computed from the current
-- identity_map when read.
WITH sizes AS (
    SELECT profile_id, count(*) AS identifiers
    FROM identity_map
    GROUP BY profile_id
),
buckets AS (
    SELECT CASE
               WHEN identifiers = 1 THEN '01: 1'
               WHEN identifiers = 2 THEN '02: 2'
               WHEN identifiers <= 5 THEN '03: 3-5'
               WHEN identifiers <= 10 THEN '04: 6-10'
               WHEN identifiers <= 50 THEN '05: 11-50'
               ELSE '06: 51+'
           END AS bucket
    FROM sizes
),
largest AS (
    SELECT profile_id, identifiers
    FROM sizes
    ORDER BY identifiers DESC, profile_id
    LIMIT 10
)
SELECT 'summary' AS section, 'profiles' AS item, count(*) AS value FROM sizes
UNION ALL
SELECT 'summary' AS section, 'identifiers' AS item, coalesce(sum(identifiers), 0) AS value FROM sizes
UNION ALL
SELECT 'summary' AS section, 'rejections' AS item, count(*) AS value FROM identity_rejections
UNION ALL
SELECT 'summary' AS section, 'largest_profile_identifiers' AS item, coalesce(max(identifiers), 0) AS value FROM sizes
UNION ALL
SELECT 'profile_size' AS section, bucket AS item, count(*) AS value FROM buckets GROUP BY bucket
UNION ALL
SELECT 'identifiers_by_type' AS section, id_type AS item, count(*) AS value FROM identity_map GROUP BY id_type
UNION ALL
SELECT 'rejections_by_rule' AS section, rule AS item, count(*) AS value FROM identity_rejections GROUP BY rule
UNION ALL
SELECT 'largest_profiles' AS section, profile_id AS item, identifiers AS value FROM largest
