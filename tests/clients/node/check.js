// node-postgres against a live profiledb server: parameterised queries
// (extended protocol), a named prepared statement run repeatedly, a
// cursor read in pieces (row-limited Execute), and an error's SQLSTATE.
// Prints one JSON object; tests/integration/clients.rs compares it with
// tokio-postgres.
const { Client } = require("pg");
const Cursor = require("pg-cursor");

async function main() {
  const port = Number(process.argv[2]);
  const client = new Client({ host: "127.0.0.1", port, user: "analyst", database: "profiledb" });
  await client.connect();
  const out = {};
  const top = await client.query(
    "SELECT profile_id, order_count, total_revenue FROM profiles " +
      "WHERE order_count >= $1 ORDER BY total_revenue DESC, profile_id LIMIT 5",
    [2],
  );
  out.top = top.rows.map((r) => [r.profile_id, Number(r.order_count), Number(r.total_revenue)]);
  out.fields = top.fields.map((f) => [f.name, f.dataTypeID]);
  const counts = [];
  for (const t of ["email", "phone", "email"]) {
    const r = await client.query({
      name: "count_by_type",
      text: "SELECT count(*) AS n FROM identity_map WHERE id_type = $1",
      values: [t],
    });
    counts.push(Number(r.rows[0].n));
  }
  out.prepared = counts;
  const cursor = client.query(new Cursor("SELECT profile_id FROM profiles ORDER BY profile_id"));
  let seen = 0;
  for (;;) {
    const rows = await cursor.read(64);
    if (rows.length === 0) break;
    seen += rows.length;
  }
  await cursor.close();
  out.cursor = seen;
  try {
    await client.query("SELECT no_such_column FROM profiles");
  } catch (e) {
    out.error = e.code;
  }
  out.after_error = (await client.query("SELECT 1 AS one")).rows[0].one;
  await client.end();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
