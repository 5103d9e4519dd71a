{{ config(materialized='table', indexes=[{'columns': ['profile_id']}]) }}
-- profile_scores: each buyer's RFM scores, 1 to 5, ranked against every
-- other buyer, so computed over all of them on each run (a table). A
-- score is the quintile of the buyer's value: ceil(5 × the share of
-- buyers whose value is at most theirs), so buyers with equal values get
-- equal scores (two buyers of three orders each share an F score), and
-- equal input gives equal scores whatever the rows' order. Recency ranks
-- by the last order's time, so the scores do not move with the clock
-- between two runs over the same data. Few scores change when a little
-- data lands, and a rebuilt table is published as its changed rows, so
-- profiles recomputes only those.
SELECT profile_id,
       CAST(ceil(5 * cume_dist() OVER (ORDER BY last_order_at)) AS INT) AS r_score,
       CAST(ceil(5 * cume_dist() OVER (ORDER BY order_count)) AS INT) AS f_score,
       CAST(ceil(5 * cume_dist() OVER (ORDER BY total_revenue)) AS INT) AS m_score
FROM profile_traits
WHERE order_count > 0
