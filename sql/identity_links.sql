{{ config(materialized='view') }}
-- identity_links: every link identity resolution applied, with the row that
-- carried it. Within a profile the links form a tree: explain_identity walks
-- it to show the chain that joins two identifiers.
-- A view of identity_graph: it costs nothing to build and follows each
-- new graph at once.
SELECT profile_id, id_type, id_value, linked_type, linked_value,
       source, row_key, first_seen_at AS linked_at
FROM identity_graph
WHERE status = 'link'
