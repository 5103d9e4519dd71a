"""The Python clients analysts use, against a live profiledb server.

Run by tests/integration/clients.rs with the server's port; prints one JSON
object with what each client read, which the Rust test compares with
tokio-postgres. Each client is used the way its users use it: parameters,
binary results, server-side cursors, SQLAlchemy reflection and pandas.
"""

import asyncio
import json
import sys

import asyncpg
import pandas
import psycopg
import psycopg2
import sqlalchemy

PORT = int(sys.argv[1])
DSN = f"host=127.0.0.1 port={PORT} dbname=profiledb user=analyst"
TOP = (
    "SELECT profile_id, order_count, total_revenue FROM profiles "
    "WHERE order_count >= %s ORDER BY total_revenue DESC, profile_id LIMIT 5"
)
ALL_IDS = "SELECT profile_id FROM profiles ORDER BY profile_id"
out = {}


def rows(rs):
    return [[v if isinstance(v, (int, str, type(None))) else float(v) for v in r] for r in rs]


# psycopg2: client-side parameters, a named (server-side) cursor.
with psycopg2.connect(DSN) as conn:
    with conn.cursor() as cur:
        cur.execute(TOP, (2,))
        out["psycopg2_top"] = rows(cur.fetchall())
        cur.execute("SELECT pg_backend_pid()")
        out["psycopg2_pid_matches"] = cur.fetchone()[0] == conn.get_backend_pid()
    with conn.cursor(name="all_ids") as named:
        named.itersize = 97
        ids = [r[0] for r in named.execute(ALL_IDS) or named]
        out["psycopg2_named_cursor"] = [len(ids), ids[:3], ids == sorted(ids)]

# psycopg 3: server-side parameters, binary results, server-side cursor.
with psycopg.connect(DSN) as conn:
    with conn.cursor(binary=True) as cur:
        cur.execute(TOP, (2,))
        out["psycopg3_binary_top"] = rows(cur.fetchall())
    with conn.cursor(name="ids") as named:
        named.itersize = 101
        named.execute(ALL_IDS)
        ids = [r[0] for r in named]
        out["psycopg3_named_cursor"] = len(ids)
    out["psycopg3_pid_matches"] = (
        conn.execute("SELECT pg_backend_pid()").fetchone()[0] == conn.info.backend_pid
    )


# asyncpg: binary protocol throughout, prepared statements, a cursor that
# reads a portal in pieces (row-limited Execute).
async def with_asyncpg():
    conn = await asyncpg.connect(host="127.0.0.1", port=PORT, user="analyst", database="profiledb")
    try:
        top = await conn.fetch(TOP.replace("%s", "$1"), 2)
        out["asyncpg_top"] = rows([list(r.values()) for r in top])
        stmt = await conn.prepare("SELECT count(*) FROM identity_map WHERE id_type = $1")
        out["asyncpg_prepared"] = [await stmt.fetchval(t) for t in ("email", "phone")]
        async with conn.transaction():
            seen = 0
            async for _ in conn.cursor(ALL_IDS, prefetch=50):
                seen += 1
            out["asyncpg_cursor"] = seen
    finally:
        await conn.close()


asyncio.run(with_asyncpg())

# SQLAlchemy 2: reflection, then pandas over the same engine.
engine = sqlalchemy.create_engine(f"postgresql+psycopg2://analyst@127.0.0.1:{PORT}/profiledb")
inspector = sqlalchemy.inspect(engine)
out["sqlalchemy_schemas"] = sorted(inspector.get_schema_names())
out["sqlalchemy_tables"] = sorted(inspector.get_table_names(schema="public"))
out["sqlalchemy_views"] = sorted(inspector.get_view_names(schema="segments"))
out["sqlalchemy_columns"] = [
    [c["name"], str(c["type"]), c["nullable"]] for c in inspector.get_columns("profiles")
]
out["sqlalchemy_pk"] = inspector.get_pk_constraint("profiles")["constrained_columns"]
out["sqlalchemy_indexes"] = inspector.get_indexes("profiles")
profiles = sqlalchemy.Table("profiles", sqlalchemy.MetaData(), autoload_with=engine)
with engine.connect() as conn:
    n = conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(profiles)).scalar()
    out["sqlalchemy_core_count"] = n
frame = pandas.read_sql(
    sqlalchemy.text(TOP.replace("%s", ":n")), engine, params={"n": 2}
)
out["pandas_top"] = rows(frame.itertuples(index=False))
out["pandas_dtypes"] = [str(t) for t in frame.dtypes]

print(json.dumps(out))
