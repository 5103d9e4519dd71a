{{ config(materialized='incremental', unique_key='profile_id', indexes=[{'columns': ['profile_id']}]) }}
-- profile_traits: one row per resolved person, with traits and activity;
-- `profiles` adds the RFM scores, which rank every profile against the
-- others. Incremental: a run recomputes only the profiles that the changes
-- since its last run reach (identifiers added to or moved between profiles
-- by identity_graph, new events, new orders) and removes the profiles that
-- merged into others.
WITH people AS (
    SELECT profile_id,
           min(id_value) FILTER (WHERE id_type = 'user_id') AS user_id,
           min(first_seen_at) AS first_seen_at,
           max(last_seen_at) AS last_seen_at
    FROM identity_map
    GROUP BY profile_id
),
latest_email AS (
    SELECT profile_id, id_value AS email,
           row_number() OVER (PARTITION BY profile_id ORDER BY last_seen_at DESC, id_value) AS rn
    FROM identity_map WHERE id_type = 'email'
),
latest_phone AS (
    SELECT profile_id, id_value AS phone,
           row_number() OVER (PARTITION BY profile_id ORDER BY last_seen_at DESC, id_value) AS rn
    FROM identity_map WHERE id_type = 'phone'
),
crm AS (
    SELECT m.profile_id, c.first_name, c.last_name, c.birthday, c.city, c.country, c.consent_email,
           row_number() OVER (PARTITION BY m.profile_id ORDER BY c.updated_at DESC, c.contact_id, c.email, c.phone) AS rn
    FROM crm_contacts c
    JOIN identity_map m ON m.id_type = 'crm_contact_id' AND m.id_value = c.contact_id
),
activity AS (
    SELECT m.profile_id, count(DISTINCT i.row_key) AS event_count
    FROM identifiers i
    JOIN identity_map m ON m.id_type = i.id_type AND m.id_value = i.id_value
    WHERE i.source = 'events'
    GROUP BY m.profile_id
),
purchases AS (
    SELECT profile_id,
           count(*) AS order_count,
           round(sum(amount), 2) AS total_revenue,
           max(ordered_at) AS last_order_at
    FROM orders_unified
    WHERE profile_id IS NOT NULL
    GROUP BY profile_id
)
SELECT p.profile_id, p.user_id, e.email, ph.phone,
       c.first_name, c.last_name, c.city, c.country, c.birthday, c.consent_email,
       p.first_seen_at, p.last_seen_at,
       coalesce(a.event_count, 0) AS event_count,
       coalesce(o.order_count, 0) AS order_count,
       coalesce(o.total_revenue, 0.0) AS total_revenue,
       o.last_order_at
FROM people p
LEFT JOIN latest_email e ON e.profile_id = p.profile_id AND e.rn = 1
LEFT JOIN latest_phone ph ON ph.profile_id = p.profile_id AND ph.rn = 1
LEFT JOIN crm c ON c.profile_id = p.profile_id AND c.rn = 1
LEFT JOIN activity a ON a.profile_id = p.profile_id
LEFT JOIN purchases o ON o.profile_id = p.profile_id
