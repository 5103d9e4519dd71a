-- Grafana, PostgreSQL data source: getVersion()
-- (public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts)
SELECT current_setting('server_version_num')::int/100 as version
