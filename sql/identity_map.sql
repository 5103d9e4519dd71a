{{ config(materialized='incremental', unique_key=['id_type', 'id_value'],
          indexes=[{'columns': ['profile_id']}, {'columns': ['id_type', 'id_value']}]) }}
-- identity_map: one row per normalised identifier that belongs to a profile.
-- Incremental: it follows identity_graph's changes row by row (the graph's
-- inserted linked rows are added, the identifiers of its deleted ones are
-- replaced), so a run reads only what the graph's last runs changed.
SELECT profile_id, id_type, id_value, first_seen_at, last_seen_at
FROM identity_graph
WHERE status = 'linked'
