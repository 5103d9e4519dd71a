-- PostgreExecutionContext: the schema and user of a new connection (the
-- users differ: the two servers are connected to as different roles)
-- compare: current_schema
SELECT current_schema(),session_user
