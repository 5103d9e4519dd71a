"""DuckDB label propagation to convergence over edges.parquet: the
iterative SQL approach warehouse CDPs and dbt identity packages use.
Prints one JSON line like the Rust modes of benches/identity.rs."""
import json
import sys
import time

import duckdb

directory = sys.argv[1]
con = duckdb.connect()
con.execute("SET threads TO 2")
# Spill (at 50M links DuckDB needs more than the RAM) beside the data, not
# into the working directory.
con.execute(f"SET temp_directory = '{directory}/duckdb-spill'")
con.execute(f"CREATE TABLE e AS SELECT a, b FROM read_parquet('{directory}/edges.parquet')")
start = time.monotonic()
con.execute("CREATE TABLE edges AS SELECT a AS src, b AS dst FROM e UNION ALL SELECT b, a FROM e")
con.execute("CREATE TABLE labels AS SELECT DISTINCT src AS node, src AS label FROM edges")
iterations = 0
while True:
    iterations += 1
    con.execute(
        """CREATE OR REPLACE TABLE next_labels AS
           SELECT ed.src AS node, least(min(l.label), min(n.label)) AS label
           FROM edges ed
           JOIN labels l ON l.node = ed.src
           JOIN labels n ON n.node = ed.dst
           GROUP BY ed.src"""
    )
    changed = con.execute(
        "SELECT count(*) FROM next_labels n JOIN labels l USING (node) WHERE n.label <> l.label"
    ).fetchone()[0]
    con.execute("DROP TABLE labels")
    con.execute("ALTER TABLE next_labels RENAME TO labels")
    if changed == 0:
        break
seconds = time.monotonic() - start
identifiers, profiles = con.execute(
    "SELECT count(*), count(DISTINCT label) FROM labels"
).fetchone()
print(json.dumps({
    "mode": "duckdb", "seconds": round(seconds, 3), "iterations": iterations,
    "identifiers": identifiers, "profiles": profiles,
}))
