{{ config(materialized='view') }}
-- identity_rejections: every identifier or link that was not used, and why.
-- A view of identity_graph: it costs nothing to build and follows each
-- new graph at once.
SELECT id_type, id_value, reason, rule, linked_type, linked_value,
       source, row_key, first_seen_at, last_seen_at
FROM identity_graph
WHERE status = 'rejected'
