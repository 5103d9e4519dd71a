-- identity_map: one row per normalised identifier that belongs to a profile.
SELECT profile_id, id_type, id_value, first_seen_at, last_seen_at
FROM identity_graph
WHERE status = 'linked'
