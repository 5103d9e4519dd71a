{{ config(materialized='incremental',
          indexes=[{'columns': ['order_id']}, {'columns': ['source', 'row_key']}]) }}
-- order_rows: every source row that carries an order — the order system's
-- rows and Segment's "Order Completed" events — with the row's key, so its
-- identifiers can be found. Incremental: each run appends the rows of the
-- raw files that arrived since the last.
SELECT order_id, amount, currency, ordered_at,
       'orders' AS source, order_id AS row_key, 1 AS preference
FROM orders
WHERE order_id IS NOT NULL
UNION ALL
SELECT json_get_str(properties, 'order_id'),
       -- Segment's Order Completed carries revenue, or else total
       CAST(coalesce(json_get_str(properties, 'revenue'), json_get_str(properties, 'total')) AS DOUBLE),
       json_get_str(properties, 'currency'),
       "timestamp", 'events', message_id, 2
FROM events
WHERE "type" = 'track' AND event = 'Order Completed'
  AND json_get_str(properties, 'order_id') IS NOT NULL
