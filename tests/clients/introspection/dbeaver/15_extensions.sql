-- PostgreDatabase: installed extensions (PostgreSQL has plpgsql)
-- compare: none
SELECT e.oid,e.* FROM pg_catalog.pg_extension e
