{{ config(materialized='view') }}
-- profiles: one row per resolved person, with traits, activity and RFM.
-- The rows are stored in profile_rows; the days since the last order are
-- counted here, to the moment of the query, so they are never stale.
SELECT profile_id, user_id, email, phone, first_name, last_name, city, country, birthday, consent_email,
       first_seen_at, last_seen_at, event_count, order_count, total_revenue,
       CAST(date_part('day', now() - last_order_at) AS BIGINT) AS recency_days,
       order_count AS frequency,
       total_revenue AS monetary,
       r_score, f_score, m_score, rfm_segment
FROM profile_rows
