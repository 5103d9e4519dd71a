"""Identity tables through psycopg 3, as an analyst's notebook would read
them: typed parameters (server-side binding), binary results, a literal
composed client-side for a table function. Prints one JSON object that the
Rust integration test compares with tokio-postgres' answers.

usage: identity_psycopg.py <port>
"""
import json
import sys

import psycopg
from psycopg import sql

port = int(sys.argv[1])
out = {}
with psycopg.connect(host="127.0.0.1", port=port, user="analyst", dbname="profiledb") as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM profiles")
        out["profiles"] = cur.fetchone()[0]

        # The largest profile, and one identifier of it and of another type.
        cur.execute(
            "SELECT profile_id, count(*) AS n FROM identity_map "
            "GROUP BY profile_id ORDER BY n DESC, profile_id LIMIT 1"
        )
        pid, size = cur.fetchone()
        out["largest"] = [pid, size]
        cur.execute(
            "SELECT id_type, id_value FROM identity_map WHERE profile_id = %s "
            "ORDER BY id_type, id_value",
            (pid,),
        )
        ids = cur.fetchall()
        out["largest_ids"] = [list(r) for r in ids]

        # Every identifier maps back to that profile, parameters typed.
        for id_type, id_value in ids:
            cur.execute(
                "SELECT profile_id FROM identity_map WHERE id_type = %s AND id_value = %s",
                (id_type, id_value),
            )
            assert cur.fetchone()[0] == pid, (id_type, id_value)

        # Explain the first and last identifier of that profile.
        (ta, va), (tb, vb) = ids[0], ids[-1]
        query = sql.SQL("SELECT step, from_type, from_value, to_type, to_value, source, row_key, explanation "
                        "FROM explain_identity({}, {}) ORDER BY step").format(
            sql.Literal(f"{ta}:{va}"), sql.Literal(f"{tb}:{vb}"))
        cur.execute(query)
        out["explain"] = [list(r) for r in cur.fetchall()]

        cur.execute(
            "SELECT rule, count(*) FROM identity_rejections GROUP BY rule ORDER BY rule"
        )
        out["rejections"] = [list(r) for r in cur.fetchall()]

    # Binary results: numbers, text and timestamps decoded by type.
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT profile_id, order_count, total_revenue, first_seen_at FROM profiles "
            "WHERE profile_id = %s",
            (pid,),
        )
        row = cur.fetchone()
        out["profile_binary"] = [row[0], row[1], row[2], row[3].isoformat() if row[3] else None]

    # A bad query is an error with a SQLSTATE, and the connection survives.
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT no_such_column FROM profiles")
    except psycopg.Error as e:
        out["error"] = e.sqlstate
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        out["after_error"] = cur.fetchone()[0]

print(json.dumps(out, default=str))
