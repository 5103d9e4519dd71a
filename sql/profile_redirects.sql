{{ config(materialized='view') }}
-- profile_redirects: every profile id that changed, and where it went, since
-- the first run. When new data merges profiles, the survivor keeps the
-- oldest id and the others redirect to it ('merge'); when a profile splits,
-- the largest part keeps the id and the others get new ones ('split').
-- Downstream systems follow old_profile_id → new_profile_id, repeatedly.
-- A view of identity_graph: it costs nothing to build and follows each
-- new graph at once.
SELECT id_value AS old_profile_id,
       profile_id AS new_profile_id,
       reason,
       first_seen_at AS changed_at
FROM identity_graph
WHERE status = 'redirect'
