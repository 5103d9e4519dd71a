-- PostgreDatabase.RoleCache: the users and roles
-- compare: none
SELECT a.oid,a.* FROM pg_catalog.pg_roles a
ORDER BY a.rolname
