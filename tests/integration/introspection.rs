//! The introspection SQL that BI tools and drivers send, taken from their
//! own source (`tests/clients/introspection/`, each file names where), run
//! on profiledb and on a throwaway PostgreSQL 15 cluster holding the same
//! objects, and the answers compared: not just "no error".
//!
//! - Grafana's schema, table and column pickers must answer exactly as
//!   PostgreSQL does; so must Metabase's table sync (but for its row
//!   estimate, which is PostgreSQL's lagging statistics).
//! - Npgsql's (and so Power BI's) type loading: every type profiledb
//!   reports must be reported by PostgreSQL with the same OID, name, kind
//!   and element type, and the types profiledb sends on the wire must all
//!   be there.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::support::TestServer;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL 15 cluster in a temporary folder, stopped on drop.
struct Postgres15 {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres15 {
    fn start() -> Self {
        assert!(
            Path::new(PG_BIN).join("postgres").exists(),
            "PostgreSQL 15 is missing: run the README test command (./scripts/test), which installs postgresql-15"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if is_root() {
            // PostgreSQL refuses to run as root.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        run(&mut as_postgres(
            PathBuf::from(PG_BIN).join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        ));
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c TimeZone=UTC",
            dir.path().display()
        );
        let log = dir.path().join("log");
        run(&mut as_postgres(
            PathBuf::from(PG_BIN).join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        ));
        Self { dir, port }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            NoTls,
        )
        .await
        .expect("connect to PostgreSQL 15");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Postgres15 {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            PathBuf::from(PG_BIN).join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        )
        .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args`, as user postgres when we are root.
fn as_postgres(program: PathBuf, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Column names and rows (as text) of the last statement of `sql`.
async fn answer(
    client: &tokio_postgres::Client,
    sql: &str,
) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{sql}"));
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(d) => {
                columns = d.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(r) => {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
            }
            _ => {}
        }
    }
    (columns, rows)
}

fn query(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/introspection")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_introspection_answers_as_postgresql_does() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start(root.path()).await;
    let ours = server.client().await;
    let postgres = Postgres15::start();
    let theirs = postgres.client().await;
    let setup = query("setup.sql");
    ours.batch_execute(&setup).await.unwrap();
    theirs.batch_execute(&setup).await.unwrap();
    // The raw sources profiledb always declares (events, orders,
    // crm_contacts) exist on PostgreSQL too, as empty tables of the types
    // profiledb reports for them.
    let (_, declared) = answer(
        &ours,
        "SELECT table_name, string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_schema = 'public' GROUP BY table_name",
    )
    .await;
    for row in declared {
        let (Some(table), Some(columns)) = (&row[0], &row[1]) else {
            continue;
        };
        theirs
            .batch_execute(&format!("CREATE TABLE public.{table} ({columns})"))
            .await
            .unwrap();
    }

    // We say PostgreSQL 16; this PostgreSQL is 15.
    let (_, version) = answer(&ours, &query("grafana_version.sql")).await;
    assert_eq!(version, [[Some("1600".to_owned())]]);
    for name in [
        "grafana_schemas.sql",
        "grafana_tables_in_schema.sql",
        "grafana_tables.sql",
        "grafana_columns.sql",
        "npgsql_composites.sql",
        "npgsql_enums.sql",
    ] {
        let sql = query(name);
        let expected = answer(&theirs, &sql).await;
        let got = answer(&ours, &sql).await;
        assert_eq!(
            got, expected,
            "{name}: profiledb (left) vs PostgreSQL 15 (right)"
        );
    }
    // Metabase's sync: the same tables, types and descriptions; the row
    // estimate is PostgreSQL's statistics collector's (it lags), ours is
    // the live row count.
    let sql = query("metabase_tables.sql");
    let (our_columns, our_tables) = answer(&ours, &sql).await;
    let (their_columns, their_tables) = answer(&theirs, &sql).await;
    assert_eq!(our_columns, their_columns);
    let first_four =
        |rows: &[Vec<Option<String>>]| rows.iter().map(|r| r[..4].to_vec()).collect::<Vec<_>>();
    assert_eq!(first_four(&our_tables), first_four(&their_tables));
    let estimates: Vec<Option<&str>> = our_tables.iter().map(|r| r[4].as_deref()).collect();
    assert_eq!(
        estimates,
        [Some("2"), None],
        "customers (2 rows), then the view"
    );
    // Array literals and `<> ALL` as editors filter keywords with them.
    for sql in [
        "SELECT w FROM unnest('{a,\"b c\",NULL,d}'::text[]) AS w WHERE w <> ALL ('{d, x}'::text[]) ORDER BY 1",
        "SELECT 'x' = ANY('{x,y}'::text[]) AS found, 3 = ANY('{1,2}'::int[]) AS missing",
        "SELECT catcode, catdesc FROM pg_catalog.pg_get_keywords() WHERE word IN ('select', 'from')",
    ] {
        assert_eq!(
            answer(&ours, sql).await,
            answer(&theirs, sql).await,
            "{sql}"
        );
    }
    // Grafana found the table and its columns with PostgreSQL's types.
    let (_, columns) = answer(&ours, &query("grafana_columns.sql")).await;
    assert_eq!(columns.len(), 7);

    // Npgsql: each type profiledb reports is PostgreSQL's, to the OID.
    let sql = query("npgsql_types.sql");
    let (our_columns, our_types) = answer(&ours, &sql).await;
    let (their_columns, their_types) = answer(&theirs, &sql).await;
    assert_eq!(our_columns, their_columns);
    assert!(!our_types.is_empty());
    for t in &our_types {
        assert!(
            their_types.contains(t),
            "npgsql_types.sql: profiledb reports {t:?}, which PostgreSQL 15 does not"
        );
    }
    let names: Vec<&str> = our_types.iter().filter_map(|t| t[2].as_deref()).collect();
    for wire in [
        "bool",
        "int2",
        "int4",
        "int8",
        "float4",
        "float8",
        "text",
        "varchar",
        "date",
        "timestamp",
        "timestamptz",
        "numeric",
        "bytea",
        "json",
        "jsonb",
        "uuid",
        "interval",
        "_int8",
        "_text",
        "_float8",
    ] {
        assert!(
            names.contains(&wire),
            "npgsql_types.sql lacks {wire}: {names:?}"
        );
    }
    server.stop().await;
}
