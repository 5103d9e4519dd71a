-- PostgreDataSource: the connected database (named profiledb on ours,
-- postgres on the test cluster)
-- $1: SELECT current_database()
-- compare: encoding, datistemplate, datallowconn, datconnlimit
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname=$1
