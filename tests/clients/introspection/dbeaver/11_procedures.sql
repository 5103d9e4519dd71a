-- PostgreSchema.ProceduresCache: the functions of a schema (none in mart)
-- $1: SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'mart'
-- compare: count
SELECT p.oid,p.*,d.description
FROM pg_catalog.pg_proc p
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=p.oid
WHERE p.pronamespace=$1
ORDER BY p.proname
