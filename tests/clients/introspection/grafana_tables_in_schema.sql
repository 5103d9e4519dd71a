-- Grafana, PostgreSQL data source: showTables('mart') (postgresMetaQuery.ts)
SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'mart'
      ORDER BY 1
