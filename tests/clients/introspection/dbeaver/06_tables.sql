-- PostgreSchema.TableCache: the tables and views of a schema
-- $1: SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'mart'
-- compare: relname, relkind, relpersistence, relnatts, relhasindex, relispartition, description, partition_expr, partition_key
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key 
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=$1 AND c.relkind not in ('i','I','c')
 ORDER BY c.relname
