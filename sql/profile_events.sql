{{ config(materialized='view') }}
-- profile_events: every event with the profile it belongs to, through the
-- identifiers its row carried (all of a row's identifiers are in one
-- profile). A view: it follows each new identity_map at no build cost.
-- The analyses (funnel, paths_after, cohort_retention) read it.
WITH owner AS (
    SELECT i.row_key AS message_id, min(m.profile_id) AS profile_id
    FROM identifiers i
    JOIN identity_map m ON m.id_type = i.id_type AND m.id_value = i.id_value
    WHERE i.source = 'events'
    GROUP BY i.row_key
)
SELECT o.profile_id, e.message_id, e.type, e.event, e."timestamp", e.properties
FROM events e
JOIN owner o ON o.message_id = e.message_id
