-- PostgreSchema.TableCache children: the columns of a table. DBeaver
-- shows those numbered from 1; PostgreSQL also lists its system columns
-- (ctid, xmin, …, numbered below 0), which profiledb tables do not have.
-- keep: attnum = 1, 2, 3, 4, 5, 6, 7
-- $1: SELECT 'mart.customers'::regclass::oid
-- compare: relname, attname, atttypid, attnum, attlen, atttypmod, attnotnull, atthasdef, attisdropped, def_value, description, objid
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=$1
ORDER BY a.attnum
