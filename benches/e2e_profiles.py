#!/usr/bin/env python3
"""End-to-end benchmark: `profiledb generate` + `profiledb run`, per model,
then the `profiles` model side by side with DuckDB running the same SQL over
the same Parquet inputs, alternating, several rounds.

Usage: benches/e2e_profiles.py PROFILEDB_BINARY WORK_DIR PEOPLE [ROUNDS]
Prints a Markdown section for BENCHMARKS.md. Every timed step asserts its
row counts, so an error can never be timed as a result.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

BIN, WORK, PEOPLE = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 5
REPO = Path(__file__).resolve().parent.parent
DATA = WORK / f"data-{PEOPLE}"
# The shipped models in build order (each is built by its own process).
MODELS = [
    "identifiers", "identity_rules", "identity_graph", "identity_map", "identity_rejections",
    "identity_links", "identity_health", "order_rows", "orders_unified", "profile_traits",
    "profile_scores", "profiles", "profile_redirects",
]


def model_sql(name):
    """A shipped model's query, without its `{{ config(...) }}` line."""
    text = (REPO / "sql" / f"{name}.sql").read_text()
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("{{"))


def timed(args):
    """Runs a command under /usr/bin/time -v: (seconds, peak RSS MiB, stderr)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *args], capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{p.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024
    return secs, rss, p.stderr


def pointer(table):
    return json.loads((DATA / "catalog/tables/public" / f"{table}.json").read_text())


def main():
    if not DATA.exists():
        secs, rss, err = timed([BIN, "--data", str(DATA), "generate", "--people", str(PEOPLE), "--seed", "1", "--as-of", "2026-06-30"])
        print(f"generate: {secs:.1f} s, peak {rss:.0f} MiB; {err.strip().splitlines()[0]}", file=sys.stderr)
    rows = {}
    per_model = []
    for m in MODELS:
        secs, rss, _ = timed([BIN, "--data", str(DATA), "run", "--select", m])
        rows[m] = pointer(m)["rows"]
        per_model.append((m, rows[m], secs, rss))
    events = sum(1 for _ in (DATA / "raw/events").glob("*.parquet"))

    # DuckDB on the same SQL and the same Parquet inputs.
    # profiles = profile_traits (traits and activity) + the RFM scores
    # (profile_scores).
    sql = model_sql("profiles")
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    for t in ["identity_map", "identifiers", "orders_unified"]:
        files = [str(DATA / f) for f in pointer(t)["files"]]
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet({files!r})")
    con.execute(f"CREATE VIEW crm_contacts AS SELECT * FROM read_parquet('{DATA}/raw/crm_contacts/*.parquet')")
    con.execute(f"CREATE VIEW profile_traits AS {model_sql('profile_traits')}")
    con.execute(f"CREATE VIEW profile_scores AS {model_sql('profile_scores')}")
    out = WORK / "duckdb_profiles.parquet"

    ours, theirs = [], []
    for _ in range(ROUNDS):
        # The three models, rebuilt whole (DuckDB computes them in one query).
        secs, _, _ = timed([BIN, "--data", str(DATA), "run", "--select", "profile_traits,profile_scores,profiles", "--full-refresh"])
        assert pointer("profiles")["rows"] == rows["profiles"]
        ours.append(secs)
        t0 = time.perf_counter()
        con.execute(f"COPY ({sql}) TO '{out}' (FORMAT PARQUET)")
        theirs.append(time.perf_counter() - t0)
        n = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
        assert n == rows["profiles"], (n, rows["profiles"])

    med = statistics.median
    print(f"### {PEOPLE:,} people ({rows['identifiers']:,} identifier occurrences, {rows['profiles']:,} profiles)\n")
    print("| model | rows | wall (s) | peak RSS (MiB) |\n|---|---:|---:|---:|")
    for m, r, s, rss in per_model:
        print(f"| {m} | {r:,} | {s:.2f} | {rss:.0f} |")
    print(f"\n`profile_traits` + `profile_scores` + `profiles` models, {ROUNDS} alternating rounds (each writes Parquet):\n")
    print("| engine | median (s) | min–max (s) |\n|---|---:|---:|")
    print(f"| profiledb | {med(ours):.2f} | {min(ours):.2f}–{max(ours):.2f} |")
    print(f"| DuckDB {duckdb.__version__} | {med(theirs):.2f} | {min(theirs):.2f}–{max(theirs):.2f} |")
    print(f"\nratio profiledb / DuckDB (median): **{med(ours) / med(theirs):.2f}×**\n")


if __name__ == "__main__":
    main()
