-- PostgreDialect: key words to highlight (only that it runs: our parser
-- has its own list)
-- compare: none
select string_agg(word, ',') from pg_catalog.pg_get_keywords()
