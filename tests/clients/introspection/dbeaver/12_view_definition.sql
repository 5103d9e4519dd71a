-- PostgreViewBase: the definition shown in a view's Source tab (ours is
-- the SQL as written, PostgreSQL's its deparsed form: one row each)
-- $1: SELECT 'mart.active_customers'::regclass::oid
-- compare: count
select pg_catalog.pg_get_viewdef($1, true)
