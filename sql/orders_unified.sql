{{ config(materialized='incremental', unique_key='order_id', indexes=[{'columns': ['order_id']}, {'columns': ['profile_id']}]) }}
-- orders_unified: one row per order_id, whether it came from the order
-- system, as an "Order Completed" event, or both; attributed to a profile
-- through the identifiers of the rows that carried it. Incremental: a run
-- recomputes the orders that new rows carry and those whose identifiers
-- moved to another profile.
WITH facts AS (
    SELECT order_id, amount, currency, ordered_at,
           row_number() OVER (PARTITION BY order_id ORDER BY preference, ordered_at, row_key) AS rn
    FROM order_rows
),
attribution AS (
    SELECT o.order_id, min(m.profile_id) AS profile_id
    FROM order_rows o
    JOIN identifiers i ON i.source = o.source AND i.row_key = o.row_key
    JOIN identity_map m ON m.id_type = i.id_type AND m.id_value = i.id_value
    GROUP BY o.order_id
)
SELECT f.order_id, a.profile_id, f.amount, f.currency, f.ordered_at
FROM facts f
LEFT JOIN attribution a ON a.order_id = f.order_id
WHERE f.rn = 1
