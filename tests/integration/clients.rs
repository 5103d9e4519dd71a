//! Real client libraries against a live server. The README test command
//! installs them in a virtualenv and names its Python in
//! `PROFILEDB_TEST_PYTHON`; each script prints JSON that is compared here
//! with what tokio-postgres reads.

use std::process::Command;

use crate::support::{TestServer, generated_root, run_models};

/// The virtualenv's Python that `scripts/test` prepared.
fn python() -> String {
    std::env::var("PROFILEDB_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "PROFILEDB_TEST_PYTHON is not set: run the README test command \
             (./scripts/test), which installs the Python clients in a virtualenv"
        )
    })
}

fn run_script(script: &str, port: u16) -> serde_json::Value {
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python())
        .arg(&path)
        .arg(port.to_string())
        .output()
        .expect("run the client script");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_reads_identity_tables_like_tokio_postgres() {
    let root = generated_root(1_000, 11).await;
    run_models(root.path(), None).await;
    let server = TestServer::start(root.path()).await;
    let got = run_script("identity_psycopg.py", server.addr.port());

    let client = server.client().await;
    let profiles: i64 = client
        .query_one("SELECT count(*) FROM profiles", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(got["profiles"], profiles);
    let largest = client
        .query_one(
            "SELECT profile_id, count(*) AS n FROM identity_map \
             GROUP BY profile_id ORDER BY n DESC, profile_id LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let pid: String = largest.get(0);
    let size: i64 = largest.get(1);
    assert_eq!(got["largest"], serde_json::json!([pid, size]));
    assert_eq!(got["largest_ids"].as_array().unwrap().len() as i64, size);

    // The explanation joins the first and last identifier of the profile,
    // step by step, each step with its evidence row.
    let steps = got["explain"].as_array().unwrap();
    assert!(size < 2 || !steps.is_empty(), "{got}");
    for step in steps {
        assert!(step[5].is_string() && step[6].is_string(), "{step}");
    }

    let rejections = client
        .query(
            "SELECT rule, count(*) FROM identity_rejections GROUP BY rule ORDER BY rule",
            &[],
        )
        .await
        .unwrap();
    let expected: Vec<serde_json::Value> = rejections
        .iter()
        .map(|r| serde_json::json!([r.get::<_, String>(0), r.get::<_, i64>(1)]))
        .collect();
    assert_eq!(got["rejections"], serde_json::Value::Array(expected));
    assert!(!got["rejections"].as_array().unwrap().is_empty());

    let row = client
        .query_one(
            "SELECT order_count, total_revenue FROM profiles WHERE profile_id = $1",
            &[&pid],
        )
        .await
        .unwrap();
    let binary = &got["profile_binary"];
    assert_eq!(binary[0], pid);
    assert_eq!(binary[1], row.get::<_, i64>(0));
    assert_eq!(binary[2].as_f64(), row.get::<_, Option<f64>>(1));
    assert!(
        binary[3].as_str().is_some_and(|t| t.contains("+00:00")),
        "{binary}"
    );

    assert_eq!(got["error"], "42703");
    assert_eq!(got["after_error"], 1);
    server.stop().await;
}

/// psycopg2 (named cursor), psycopg 3 (binary, server-side cursor),
/// asyncpg (binary protocol, prepared statements, a portal read in
/// pieces), SQLAlchemy 2 reflection and pandas, each checked against what
/// tokio-postgres reads from the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_read_what_tokio_postgres_reads() {
    let (_root, server, client) = matrix_server().await;
    let got = run_script("python_matrix.py", server.addr.port());
    let top = top_buyers(&client).await;
    for key in [
        "psycopg2_top",
        "psycopg3_binary_top",
        "asyncpg_top",
        "pandas_top",
    ] {
        assert_eq!(got[key], top, "{key}");
    }
    let profiles = count_profiles(&client).await;
    let first = first_profile_ids(&client, 3).await;
    assert_eq!(
        got["psycopg2_named_cursor"],
        serde_json::json!([profiles, first, true])
    );
    assert_eq!(got["psycopg3_named_cursor"], profiles);
    assert_eq!(got["asyncpg_cursor"], profiles);
    assert_eq!(got["sqlalchemy_core_count"], profiles);
    assert_eq!(got["psycopg2_pid_matches"], true);
    assert_eq!(got["psycopg3_pid_matches"], true);
    assert_eq!(
        got["asyncpg_prepared"],
        serde_json::json!(identifier_counts(&client, &["email", "phone"]).await)
    );

    // Reflection agrees with information_schema.
    let schemas = got["sqlalchemy_schemas"].as_array().unwrap();
    for s in ["public", "segments"] {
        assert!(schemas.iter().any(|x| x == s), "{schemas:?}");
    }
    assert_eq!(got["sqlalchemy_tables"], public_tables(&client).await);
    assert_eq!(got["sqlalchemy_views"], serde_json::json!(["big_spenders"]));
    let declared = client
        .query(
            "SELECT column_name::text, is_nullable::text, data_type::text \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = 'profiles' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap();
    // SQLAlchemy spells timestamptz TIMESTAMP (with timezone=True).
    let expected: Vec<serde_json::Value> = declared
        .iter()
        .map(|r| {
            let data_type: String = r.get(2);
            serde_json::json!([
                r.get::<_, String>(0),
                data_type.replace(" with time zone", "").to_uppercase(),
                r.get::<_, String>(1) == "YES"
            ])
        })
        .collect();
    assert_eq!(
        got["sqlalchemy_columns"],
        serde_json::Value::Array(expected)
    );
    assert_eq!(got["sqlalchemy_pk"], serde_json::json!([]));
    assert_eq!(got["pandas_dtypes"][1], "int64");
    assert_eq!(got["pandas_dtypes"][2], "float64");
    server.stop().await;
}

/// node-postgres: parameters, a named prepared statement, a cursor read in
/// pieces (row-limited Execute), an error's SQLSTATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_reads_what_tokio_postgres_reads() {
    let (_root, server, client) = matrix_server().await;
    let modules = std::env::var("PROFILEDB_TEST_NODE_PATH").unwrap_or_else(|_| {
        panic!("PROFILEDB_TEST_NODE_PATH is not set: run the README test command (./scripts/test)")
    });
    let script = format!("{}/tests/clients/node/check.js", env!("CARGO_MANIFEST_DIR"));
    let got = run_json(
        Command::new("node")
            .arg(script)
            .arg(server.addr.port().to_string())
            .env("NODE_PATH", modules),
    );
    assert_eq!(got["top"], top_buyers(&client).await);
    // int8 and float8 columns, by their type OIDs.
    assert_eq!(got["fields"][1], serde_json::json!(["order_count", 20]));
    assert_eq!(got["fields"][2], serde_json::json!(["total_revenue", 701]));
    assert_eq!(
        got["prepared"],
        serde_json::json!(identifier_counts(&client, &["email", "phone", "email"]).await)
    );
    assert_eq!(got["cursor"], count_profiles(&client).await);
    assert_eq!(got["error"], "42703");
    assert_eq!(got["after_error"], "1");
    server.stop().await;
}

/// pgjdbc from Debian's libpostgresql-jdbc-java: DatabaseMetaData, a
/// prepared statement past prepareThreshold, setFetchSize.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_reads_what_tokio_postgres_reads() {
    let (_root, server, client) = matrix_server().await;
    let jar = std::env::var("PROFILEDB_TEST_JDBC_JAR")
        .unwrap_or_else(|_| "/usr/share/java/postgresql.jar".to_owned());
    assert!(
        std::path::Path::new(&jar).exists(),
        "{jar} is missing: run the README test command (./scripts/test), which installs libpostgresql-jdbc-java"
    );
    let program = format!(
        "{}/tests/clients/JdbcCheck.java",
        env!("CARGO_MANIFEST_DIR")
    );
    let got = run_json(
        Command::new("java")
            .args(["-cp", &jar, &program])
            .arg(server.addr.port().to_string()),
    );
    assert_eq!(got["product"], "PostgreSQL 16");
    for s in ["public", "segments"] {
        assert!(
            got["schemas"].as_array().unwrap().iter().any(|x| x == s),
            "{}",
            got["schemas"]
        );
    }
    assert_eq!(got["tables"], public_tables(&client).await);
    assert_eq!(got["views"], serde_json::json!(["big_spenders"]));
    let columns: Vec<serde_json::Value> = client
        .query(
            "SELECT column_name::text, udt_name::text, ordinal_position::int8, is_nullable::text \
             FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = 'profiles' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::json!([
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i64>(2),
                r.get::<_, String>(3)
            ])
        })
        .collect();
    assert_eq!(got["columns"], serde_json::Value::Array(columns));
    let counts = identifier_counts(&client, &["email", "phone"]).await;
    assert_eq!(
        got["prepared"],
        serde_json::json!([
            counts[0], counts[1], counts[0], counts[1], counts[0], counts[1]
        ])
    );
    assert_eq!(got["fetched"], count_profiles(&client).await);
    assert_eq!(got["first"], first_profile_ids(&client, 1).await[0]);
    assert_eq!(got["top"], top_buyers(&client).await);
    server.stop().await;
}

/// A server over 1,000 generated people with the models built and one
/// segment, plus a tokio-postgres client to check against.
async fn matrix_server() -> (tempfile::TempDir, TestServer, tokio_postgres::Client) {
    let root = generated_root(1_000, 12).await;
    run_models(root.path(), None).await;
    let server = TestServer::start(root.path()).await;
    let client = server.client().await;
    client
        .batch_execute(
            "CREATE VIEW segments.big_spenders AS SELECT profile_id FROM profiles WHERE total_revenue > 500",
        )
        .await
        .unwrap();
    (root, server, client)
}

fn run_json(command: &mut Command) -> serde_json::Value {
    let out = command.output().expect("run the client");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

/// The five biggest spenders with two orders or more, as JSON rows.
async fn top_buyers(client: &tokio_postgres::Client) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = client
        .query(
            "SELECT profile_id, order_count, total_revenue FROM profiles \
             WHERE order_count >= $1 ORDER BY total_revenue DESC, profile_id LIMIT 5",
            &[&2_i64],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::json!([
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, f64>(2)
            ])
        })
        .collect();
    assert_eq!(rows.len(), 5);
    serde_json::Value::Array(rows)
}

async fn count_profiles(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM profiles", &[])
        .await
        .unwrap()
        .get(0)
}

async fn first_profile_ids(client: &tokio_postgres::Client, n: i64) -> Vec<String> {
    client
        .query(
            "SELECT profile_id FROM profiles ORDER BY profile_id LIMIT $1",
            &[&n],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn identifier_counts(client: &tokio_postgres::Client, types: &[&str]) -> Vec<i64> {
    let mut counts = Vec::new();
    for t in types {
        counts.push(
            client
                .query_one("SELECT count(*) FROM identity_map WHERE id_type = $1", &[t])
                .await
                .unwrap()
                .get(0),
        );
    }
    counts
}

/// The tables of schema public, by information_schema.
async fn public_tables(client: &tokio_postgres::Client) -> serde_json::Value {
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.iter().any(|t| t == "profiles"));
    serde_json::json!(tables)
}
