-- PostgreSessionManager: the session manager (PostgreSQL also lists its
-- background processes)
-- compare: none
SELECT sa.* FROM pg_catalog.pg_stat_activity sa
