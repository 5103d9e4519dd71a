-- Objects created the same way on profiledb and on PostgreSQL 15 before
-- the introspection queries of the other files are replayed on both
-- (tests/integration/introspection.rs).
CREATE SCHEMA IF NOT EXISTS segments;
CREATE SCHEMA mart;
CREATE TABLE mart.customers (id bigint, name text, signup timestamptz, score double precision, active boolean, birthday date, visits integer);
INSERT INTO mart.customers VALUES (1, 'Ada', '2026-01-02 03:04:05+00', 9.5, true, '1990-04-01', 3), (2, 'Bo', NULL, NULL, false, NULL, NULL);
CREATE VIEW mart.active_customers AS SELECT id, name FROM mart.customers WHERE active;
COMMENT ON TABLE mart.customers IS 'People who signed up';
COMMENT ON COLUMN mart.customers.score IS 'Engagement score';
