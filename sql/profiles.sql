-- profiles: one row per resolved person, with traits, activity and RFM.
-- The traits come from profile_traits (kept up to date incrementally); the
-- scores rank every buyer against the others, so they are computed here
-- over all of them on each run.
WITH base AS (
    SELECT t.*,
           CAST(date_part('day', now() - t.last_order_at) AS BIGINT) AS recency_days
    FROM profile_traits t
),
-- ties are broken by profile id, so equal input gives equal scores; recency
-- ranks by the last order's time, not by recency_days, so the scores do not
-- move with the clock between two runs over the same data. Only buyers are
-- ranked, over just the columns the ranks need, and joined back.
scores AS (
    SELECT profile_id,
           CAST(ntile(5) OVER (ORDER BY last_order_at, profile_id) AS INT) AS r_score,
           CAST(ntile(5) OVER (ORDER BY order_count, profile_id) AS INT) AS f_score,
           CAST(ntile(5) OVER (ORDER BY total_revenue, profile_id) AS INT) AS m_score
    FROM profile_traits
    WHERE order_count > 0
),
scored AS (
    SELECT b.*, s.r_score, s.f_score, s.m_score
    FROM base b
    LEFT JOIN scores s ON s.profile_id = b.profile_id
)
SELECT profile_id, user_id, email, phone, first_name, last_name, city, country, birthday, consent_email,
       first_seen_at, last_seen_at, event_count, order_count, total_revenue,
       recency_days,
       order_count AS frequency,
       total_revenue AS monetary,
       r_score, f_score, m_score,
       CASE
           WHEN order_count = 0 THEN 'no purchases'
           WHEN r_score >= 4 AND f_score >= 4 THEN 'champions'
           WHEN r_score >= 2 AND f_score >= 3 THEN 'loyal'
           WHEN r_score >= 4 AND f_score = 1 THEN 'new customers'
           WHEN r_score >= 3 AND f_score <= 3 THEN 'potential loyalists'
           WHEN r_score <= 1 AND f_score >= 4 THEN 'cannot lose them'
           WHEN r_score <= 2 AND f_score >= 2 THEN 'at risk'
           WHEN r_score >= 2 THEN 'about to sleep'
           ELSE 'hibernating'
       END AS rfm_segment
FROM scored
