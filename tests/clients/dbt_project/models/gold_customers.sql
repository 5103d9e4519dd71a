{{ config(materialized='view') }}

select profile_id, total_revenue
from {{ ref('customer_value') }}
where tier = 'gold'
