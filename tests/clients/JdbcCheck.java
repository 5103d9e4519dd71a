// pgjdbc (Debian's libpostgresql-jdbc-java) against a live profiledb
// server, run as a single-file program: DatabaseMetaData as BI tools and
// IDEs call it, a prepared statement run past prepareThreshold (so it
// becomes a named server-side statement), and setFetchSize, which reads
// the result through a portal in pieces. Prints one JSON object; the Rust
// test (tests/integration/clients.rs) compares it with tokio-postgres.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class JdbcCheck {
    static String quote(String s) {
        return s == null ? "null" : "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    static String list(List<String> items) {
        return "[" + String.join(",", items) + "]";
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/profiledb";
        Properties props = new Properties();
        props.setProperty("user", "analyst");
        props.setProperty("prepareThreshold", "3");
        List<String> out = new ArrayList<>();
        try (Connection conn = DriverManager.getConnection(url, props)) {
            DatabaseMetaData meta = conn.getMetaData();
            out.add("\"product\":" + quote(meta.getDatabaseProductName() + " " + meta.getDatabaseMajorVersion()));

            List<String> schemas = new ArrayList<>();
            try (ResultSet rs = meta.getSchemas()) {
                while (rs.next()) schemas.add(quote(rs.getString("TABLE_SCHEM")));
            }
            out.add("\"schemas\":" + list(schemas));

            List<String> tables = new ArrayList<>();
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(quote(rs.getString("TABLE_NAME")));
            }
            out.add("\"tables\":" + list(tables));

            List<String> views = new ArrayList<>();
            try (ResultSet rs = meta.getTables(null, "segments", "%", new String[] {"VIEW"})) {
                while (rs.next()) views.add(quote(rs.getString("TABLE_NAME")));
            }
            out.add("\"views\":" + list(views));

            List<String> columns = new ArrayList<>();
            try (ResultSet rs = meta.getColumns(null, "public", "profiles", "%")) {
                while (rs.next()) {
                    columns.add("[" + quote(rs.getString("COLUMN_NAME")) + "," + quote(rs.getString("TYPE_NAME"))
                            + "," + rs.getInt("ORDINAL_POSITION") + "," + quote(rs.getString("IS_NULLABLE")) + "]");
                }
            }
            out.add("\"columns\":" + list(columns));

            List<String> counts = new ArrayList<>();
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT count(*) FROM identity_map WHERE id_type = ?")) {
                for (int i = 0; i < 6; i++) {
                    ps.setString(1, i % 2 == 0 ? "email" : "phone");
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        counts.add(Long.toString(rs.getLong(1)));
                    }
                }
            }
            out.add("\"prepared\":" + list(counts));

            conn.setAutoCommit(false);
            long seen = 0;
            String first = null;
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(100);
                try (ResultSet rs = st.executeQuery("SELECT profile_id FROM profiles ORDER BY profile_id")) {
                    while (rs.next()) {
                        if (first == null) first = rs.getString(1);
                        seen++;
                    }
                }
            }
            conn.commit();
            out.add("\"fetched\":" + seen);
            out.add("\"first\":" + quote(first));

            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT profile_id, order_count, total_revenue FROM profiles "
                            + "WHERE order_count >= ? ORDER BY total_revenue DESC, profile_id LIMIT 5")) {
                ps.setLong(1, 2);
                List<String> rows = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        rows.add("[" + quote(rs.getString(1)) + "," + rs.getLong(2) + "," + rs.getDouble(3) + "]");
                    }
                }
                out.add("\"top\":" + list(rows));
            }
        }
        System.out.println("{" + String.join(",", out) + "}");
    }
}
