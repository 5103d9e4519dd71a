{{ config(materialized='incremental', unique_key='profile_id', indexes=[{'columns': ['profile_id']}]) }}
-- profiles: one row per resolved person, with traits, activity and RFM:
-- profile_traits with the scores of profile_scores. Incremental: a run
-- replaces the rows of the profiles whose traits or scores changed since
-- its last run, and removes the profiles that merged into others.
-- The days since the last order are not stored, as they change with the
-- clock, not the data: count them when you query, e.g.
-- `date_part('day', now() - last_order_at)`.
SELECT t.profile_id, t.user_id, t.email, t.phone, t.first_name, t.last_name,
       t.city, t.country, t.birthday, t.consent_email,
       t.first_seen_at, t.last_seen_at, t.event_count, t.order_count, t.total_revenue,
       t.last_order_at,
       t.order_count AS frequency,
       t.total_revenue AS monetary,
       s.r_score, s.f_score, s.m_score,
       CASE
           WHEN t.order_count = 0 THEN 'no purchases'
           WHEN s.r_score >= 4 AND s.f_score >= 4 THEN 'champions'
           WHEN s.r_score >= 2 AND s.f_score >= 3 THEN 'loyal'
           WHEN s.r_score >= 4 AND s.f_score = 1 THEN 'new customers'
           WHEN s.r_score >= 3 AND s.f_score <= 3 THEN 'potential loyalists'
           WHEN s.r_score <= 1 AND s.f_score >= 4 THEN 'cannot lose them'
           WHEN s.r_score <= 2 AND s.f_score >= 2 THEN 'at risk'
           WHEN s.r_score >= 2 THEN 'about to sleep'
           ELSE 'hibernating'
       END AS rfm_segment
FROM profile_traits t
LEFT JOIN profile_scores s ON s.profile_id = t.profile_id
