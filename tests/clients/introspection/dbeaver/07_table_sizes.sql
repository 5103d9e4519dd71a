-- PostgreSchema: the disk sizes shown in the table list (sizes are our
-- files', so only the rows are compared)
-- $1: SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'mart'
-- compare: count
select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,pg_catalog.pg_relation_size(c.oid) as rel_size
FROM pg_class c
WHERE c.relnamespace=$1
