{{ config(materialized='incremental') }}
-- identifiers: one row per identifier seen in a source row. Incremental:
-- each run appends the rows of the raw files that arrived since the last.
-- Identifiers that share (source, row_key) are linked by resolve_identities.
-- Values that fail normalisation are kept, with reject_reason set, so they
-- are reported in identity_rejections rather than dropped.
WITH raw_ids AS (
    SELECT 'events' AS source, message_id AS row_key, "timestamp" AS ts,
           'user_id' AS id_type, user_id AS raw_value, CAST(NULL AS VARCHAR) AS country
    FROM events
    UNION ALL
    SELECT 'events' AS source, message_id AS row_key, "timestamp" AS ts,
           'anonymous_id' AS id_type, anonymous_id AS raw_value, NULL AS country
    FROM events
    UNION ALL
    -- alias calls link the previous (usually anonymous) id to the user id
    SELECT 'events' AS source, message_id AS row_key, "timestamp" AS ts,
           'anonymous_id' AS id_type, previous_id AS raw_value, NULL AS country
    FROM events WHERE "type" = 'alias'
    UNION ALL
    SELECT 'events' AS source, message_id AS row_key, "timestamp" AS ts,
           'device_id' AS id_type, json_get_str(context, 'device', 'id') AS raw_value, NULL AS country
    FROM events
    UNION ALL
    SELECT 'events' AS source, message_id AS row_key, "timestamp" AS ts,
           'email' AS id_type, json_get_str(traits, 'email') AS raw_value, NULL AS country
    FROM events
    UNION ALL
    -- track and page calls carry the user's traits in context.traits
    SELECT 'events' AS source, message_id AS row_key, "timestamp" AS ts,
           'email' AS id_type, json_get_str(context, 'traits', 'email') AS raw_value, NULL AS country
    FROM events
    UNION ALL
    SELECT 'events' AS source, message_id AS row_key, "timestamp" AS ts,
           'phone' AS id_type, coalesce(json_get_str(traits, 'phone'), json_get_str(context, 'traits', 'phone')) AS raw_value,
           json_get_str(context, 'location', 'country') AS country
    FROM events
    UNION ALL
    SELECT 'crm_contacts' AS source, contact_id AS row_key, updated_at AS ts,
           'crm_contact_id' AS id_type, contact_id AS raw_value, NULL AS country
    FROM crm_contacts
    UNION ALL
    SELECT 'crm_contacts' AS source, contact_id AS row_key, updated_at AS ts,
           'email' AS id_type, email AS raw_value, NULL AS country
    FROM crm_contacts
    UNION ALL
    SELECT 'crm_contacts' AS source, contact_id AS row_key, updated_at AS ts,
           'phone' AS id_type, phone AS raw_value, country
    FROM crm_contacts
    UNION ALL
    SELECT 'orders' AS source, order_id AS row_key, ordered_at AS ts,
           'email' AS id_type, email AS raw_value, NULL AS country
    FROM orders
),
present AS (
    SELECT source, row_key, ts, id_type, trim(raw_value) AS raw_value, country
    FROM raw_ids
    WHERE raw_value IS NOT NULL AND trim(raw_value) <> ''
),
normalised AS (
    SELECT source, row_key, ts, id_type, raw_value,
           CASE id_type
               WHEN 'email' THEN normalize_email(raw_value)
               -- national numbers need the contact's country (default US)
               WHEN 'phone' THEN normalize_phone(raw_value, coalesce(country, 'US'))
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
