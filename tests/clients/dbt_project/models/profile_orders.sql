{{ config(materialized='incremental', unique_key='order_id') }}

select order_id, profile_id, amount, ordered_at
from {{ source('cdp', 'orders_unified') }}
where profile_id is not null
{% if is_incremental() %}
  and ordered_at >= (select max(ordered_at) from {{ this }})
{% endif %}
