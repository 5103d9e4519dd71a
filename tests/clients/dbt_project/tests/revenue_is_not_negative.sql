-- A singular test: the rows it returns are failures.
select profile_id, total_revenue
from {{ ref('customer_value') }}
where total_revenue < 0
