-- identifiers: one row per identifier seen in a source row.
-- Identifiers that share (source, row_key) are linked by resolve_identities.
-- Values that fail normalisation are kept, with reject_reason set, so they
-- are reported in identity_rejections rather than dropped.
WITH raw_ids AS (
    SELECT 'events' AS source, message_id AS row_key, "timestamp" AS ts,
           'user_id' AS id_type, user_id AS raw_value
    FROM events
    UNION ALL
    SELECT 'events', message_id, "timestamp", 'anonymous_id', anonymous_id FROM events
    UNION ALL
    -- alias calls link the previous (usually anonymous) id to the user id
    SELECT 'events', message_id, "timestamp", 'anonymous_id', previous_id
    FROM events WHERE "type" = 'alias'
    UNION ALL
    SELECT 'events', message_id, "timestamp", 'device_id', json_get_str(context, 'device', 'id') FROM events
    UNION ALL
    SELECT 'events', message_id, "timestamp", 'email', json_get_str(traits, 'email') FROM events
    UNION ALL
    SELECT 'events', message_id, "timestamp", 'phone', json_get_str(traits, 'phone') FROM events
    UNION ALL
    SELECT 'crm_contacts', contact_id, updated_at, 'crm_contact_id', contact_id FROM crm_contacts
    UNION ALL
    SELECT 'crm_contacts', contact_id, updated_at, 'email', email FROM crm_contacts
    UNION ALL
    SELECT 'crm_contacts', contact_id, updated_at, 'phone', phone FROM crm_contacts
    UNION ALL
    SELECT 'orders', order_id, ordered_at, 'email', email FROM orders
),
present AS (
    SELECT source, row_key, ts, id_type, trim(raw_value) AS raw_value
    FROM raw_ids
    WHERE raw_value IS NOT NULL AND trim(raw_value) <> ''
),
normalised AS (
    SELECT source, row_key, ts, id_type, raw_value,
           CASE id_type
               WHEN 'email' THEN normalize_email(raw_value)
               WHEN 'phone' THEN normalize_phone(raw_value)
               ELSE raw_value
           END AS id_value
    FROM present
)
SELECT source,
       row_key,
       ts,
       id_type,
       coalesce(id_value, raw_value) AS id_value,
       CASE WHEN id_value IS NULL THEN 'invalid ' || id_type END AS reject_reason
FROM normalised
