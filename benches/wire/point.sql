-- A profile point lookup by id, prepared (-M prepared): the id comes from
-- bench_ids by a random row number, then the profile is read by its id.
\set n random(1, :ids)
SELECT profile_id FROM bench_ids WHERE n = :n \gset
SELECT profile_id, email, order_count, total_revenue, rfm_segment FROM profiles WHERE profile_id = :profile_id;
