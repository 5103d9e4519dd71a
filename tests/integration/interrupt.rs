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
