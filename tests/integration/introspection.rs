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
//! - DBeaver's navigator, column, constraint, index, type and session
//!   queries (`dbeaver/`, whose README says how each file says what is
//!   compared), both prepared and with their values written in.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_postgres::types::{ToSql, Type};
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
        "SELECT json_build_object('a', 1, 'b', 'x', 'c', NULL, 'd', ARRAY[1,2], 'e', true, 'f', 1.5) AS o, \
         json_build_array(1, 'a', NULL) AS a",
        "SELECT x, n FROM information_schema._pg_expandarray(ARRAY['p', 'q']) ORDER BY n",
        "SELECT s FROM generate_subscripts(ARRAY[3, 4, 5], 1, true) AS s",
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
    for file in dbeaver_files() {
        replay_dbeaver(&file, &ours, &theirs).await;
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

/// Catalog columns PostgreSQL 16 added (we say 16; this PostgreSQL is 15).
const PG16_COLUMNS: &[&str] = &["daticurules"];

fn dbeaver_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/introspection/dbeaver");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    files
}

/// What a replay file's header asks (see `dbeaver/README.md`).
#[derive(Default)]
struct Replay {
    params: Vec<String>,
    compare: Vec<String>,
    keep: Option<(String, Vec<String>)>,
    subset: bool,
}

fn replay_header(sql: &str) -> Replay {
    let mut r = Replay::default();
    for line in sql.lines().filter_map(|l| l.strip_prefix("-- ")) {
        if let Some((n, q)) = line.split_once(": ").filter(|(n, _)| n.starts_with('$')) {
            assert_eq!(n, format!("${}", r.params.len() + 1));
            r.params.push(q.to_owned());
        } else if let Some(c) = line.strip_prefix("compare: ") {
            r.compare = c.split(',').map(|c| c.trim().to_owned()).collect();
        } else if let Some(k) = line.strip_prefix("keep: ") {
            let (col, values) = k.split_once(" = ").unwrap();
            let values = values.split(',').map(|v| v.trim().to_owned()).collect();
            r.keep = Some((col.trim().to_owned(), values));
        } else if line == "subset" {
            r.subset = true;
        }
    }
    assert!(!r.compare.is_empty(), "no `-- compare:` line");
    r
}

/// Runs one DBeaver statement on both servers: prepared with its
/// parameters bound (as pgjdbc does), and as text with the values written
/// in; then compares what the file's header names.
async fn replay_dbeaver(
    file: &Path,
    ours: &tokio_postgres::Client,
    theirs: &tokio_postgres::Client,
) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let sql = std::fs::read_to_string(file).unwrap();
    let replay = replay_header(&sql);
    let mut answers = Vec::new();
    for (server, client) in [("profiledb", ours), ("PostgreSQL", theirs)] {
        let mut values = Vec::new();
        for q in &replay.params {
            let (_, rows) = answer(client, q).await;
            values.push(rows[0][0].clone().unwrap());
        }
        // Prepared, with the values bound as the statement's types (on
        // profiledb only: tokio-postgres asks for binary results, which
        // PostgreSQL has none of for `aclitem`; pgjdbc asks for text).
        let prepared = if server == "profiledb" {
            let statement = client
                .prepare(&sql)
                .await
                .unwrap_or_else(|e| panic!("{name} on {server}: prepare: {e:?}"));
            let bound: Vec<Box<dyn ToSql + Sync>> = statement
                .params()
                .iter()
                .zip(&values)
                .map(|(t, v)| -> Box<dyn ToSql + Sync> {
                    match *t {
                        Type::OID => Box::new(v.parse::<u32>().unwrap()),
                        Type::INT8 => Box::new(v.parse::<i64>().unwrap()),
                        Type::INT4 => Box::new(v.parse::<i32>().unwrap()),
                        _ => Box::new(v.clone()),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
            let rows = client
                .query(&statement, &refs)
                .await
                .unwrap_or_else(|e| panic!("{name} on {server}: execute: {e:?}"));
            Some(rows.len())
        } else {
            None
        };
        // As text, values written in.
        let mut text = sql.clone();
        for (i, v) in values.iter().enumerate().rev() {
            let literal = if v.chars().all(|c| c.is_ascii_digit()) {
                v.clone()
            } else {
                format!("'{v}'")
            };
            text = text.replace(&format!("${}", i + 1), &literal);
        }
        let (columns, rows) = answer(client, &text).await;
        if let Some(n) = prepared {
            assert_eq!(
                n,
                rows.len(),
                "{name} on {server}: prepared and text differ"
            );
        }
        answers.push((columns, rows));
    }
    let (their_columns, their_rows) = answers.pop().unwrap();
    let (our_columns, our_rows) = answers.pop().unwrap();
    for c in &our_columns {
        assert!(
            their_columns.contains(c) || PG16_COLUMNS.contains(&c.as_str()),
            "{name}: profiledb returns column {c}, which PostgreSQL 15 does not: {their_columns:?}"
        );
    }
    match replay.compare.as_slice() {
        [none] if none == "none" => return,
        [count] if count == "count" => {
            assert_eq!(our_rows.len(), their_rows.len(), "{name}: row counts");
            return;
        }
        _ => {}
    }
    let pick = |columns: &[String], rows: &[Vec<Option<String>>]| {
        let index = |c: &str| {
            columns
                .iter()
                .position(|x| x == c)
                .unwrap_or_else(|| panic!("{name}: no column {c} in {columns:?}"))
        };
        let at: Vec<usize> = replay.compare.iter().map(|c| index(c)).collect();
        let keep = replay.keep.as_ref().map(|(c, v)| (index(c), v));
        let mut picked: Vec<Vec<Option<String>>> = rows
            .iter()
            .filter(|r| match &keep {
                Some((i, values)) => r[*i].as_ref().is_some_and(|x| values.contains(x)),
                None => true,
            })
            .map(|r| at.iter().map(|&i| r[i].clone()).collect())
            .collect();
        picked.sort();
        picked
    };
    let (ours, theirs) = (
        pick(&our_columns, &our_rows),
        pick(&their_columns, &their_rows),
    );
    assert!(!ours.is_empty(), "{name}: profiledb answered no rows");
    if replay.subset {
        for row in &ours {
            assert!(
                theirs.contains(row),
                "{name}: profiledb answers {row:?} ({:?}), PostgreSQL 15 does not",
                replay.compare
            );
        }
    } else {
        assert_eq!(
            ours, theirs,
            "{name}: {:?}, profiledb (left) vs PostgreSQL 15 (right)",
            replay.compare
        );
    }
}
