{{ config(materialized='table') }}

select p.profile_id,
       p.order_count,
       p.total_revenue,
       t.tier_name as tier
from {{ source('cdp', 'profiles') }} p
join {{ ref('tiers') }} t
  on p.total_revenue >= t.min_revenue and p.total_revenue < t.max_revenue
where p.order_count > 0
