//! Cancel requests and `statement_timeout` stop a running statement with
//! SQLSTATE 57014, through tokio-postgres and psql, and the connection
//! stays usable; a `CREATE TABLE AS` stopped half-way publishes nothing.

use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::support::{TestServer, generated_root};

/// Counts far more rows than a test waits for.
const ENDLESS: &str = "SELECT count(*) FROM generate_series(1, 100000000000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_and_timeouts_stop_statements() {
    let root = generated_root(50, 51).await;
    let server = TestServer::start(root.path()).await;
    let client = server.client().await;

    // A cancel request from another connection, as psql's Ctrl-C sends.
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let started = Instant::now();
    let err = client.query_one(ENDLESS, &[]).await.unwrap_err();
    canceller.await.unwrap();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(db.code().code(), "57014");
    assert_eq!(db.message(), "canceling statement due to user request");
    assert!(started.elapsed() < Duration::from_secs(30));
    let one: i64 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1, "the connection outlives the cancelled statement");

    // statement_timeout, in the extended protocol and for DDL.
    client
        .batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let err = client.query_one(ENDLESS, &[]).await.unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "57014");
    assert_eq!(db.message(), "canceling statement due to statement timeout");
    let err = client
        .batch_execute("CREATE TABLE big AS SELECT value FROM generate_series(1, 100000000000)")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014");
    let err = client
        .query_one("SELECT count(*) FROM big", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01", "nothing was published");
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM generate_series(1, 1000)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1000);

    // psql, with the timeout set in the same message.
    let (ok, _, stderr) = server.psql(&["-c", &format!("SET statement_timeout = 200; {ENDLESS}")]);
    assert!(!ok);
    assert!(
        stderr.contains("canceling statement due to statement timeout"),
        "{stderr}"
    );
}

/// `pg_stat_activity` lists the connections with what they run;
/// `pg_cancel_backend` stops a statement of another connection and
/// `pg_terminate_backend` closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_stat_activity_and_backend_signals() {
    let root = generated_root(50, 52).await;
    let server = TestServer::start(root.path()).await;
    let admin = server.client().await;
    admin
        .batch_execute("SET application_name = 'watcher'")
        .await
        .unwrap();
    let busy = server.client().await;
    let busy_pid: i32 = busy
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    busy.batch_execute("BEGIN").await.unwrap();
    let row = admin
        .query_one(
            "SELECT state, query, usename, client_addr, backend_type, xact_start IS NOT NULL \
             FROM pg_stat_activity WHERE pid = $1",
            &[&busy_pid],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "idle in transaction");
    assert_eq!(row.get::<_, String>(1), "BEGIN");
    assert_eq!(row.get::<_, String>(3), "127.0.0.1");
    assert_eq!(row.get::<_, String>(4), "client backend");
    assert!(row.get::<_, bool>(5));
    busy.batch_execute("COMMIT").await.unwrap();

    // The running statement shows as active, and is cancelled by pid.
    let running = tokio::spawn(async move {
        let err = busy.query_one(ENDLESS, &[]).await.unwrap_err();
        (busy, err)
    });
    let mut active = false;
    for _ in 0..100 {
        let state: Option<String> = admin
            .query_opt(
                "SELECT state FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%generate_series%'",
                &[&busy_pid],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        if state.as_deref() == Some("active") {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(active, "the running statement shows as active");
    let sent: bool = admin
        .query_one("SELECT pg_cancel_backend($1)", &[&busy_pid])
        .await
        .unwrap()
        .get(0);
    assert!(sent);
    let (busy, err) = running.await.unwrap();
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    let one: i32 = busy.query_one("SELECT 1::int", &[]).await.unwrap().get(0);
    assert_eq!(one, 1, "a cancelled connection stays usable");

    // An unknown pid is no backend: false, as in PostgreSQL.
    let (ok, stdout, stderr) = server.psql(&[
        "-At",
        "-c",
        "SELECT pg_cancel_backend(1), pg_terminate_backend(1, 100)",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "f|f");

    // Terminated: the connection is closed and leaves pg_stat_activity.
    let sent: bool = admin
        .query_one(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1",
            &[&busy_pid],
        )
        .await
        .unwrap()
        .get(0);
    assert!(sent);
    let err = busy.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(err.is_closed() || err.as_db_error().is_none(), "{err:?}");
    let mut gone = false;
    for _ in 0..100 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&busy_pid],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "a closed connection leaves pg_stat_activity");
    let names: Vec<String> = admin
        .query("SELECT application_name FROM pg_stat_activity", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["watcher"]);
}
