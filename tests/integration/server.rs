//! The wire server with real drivers: SQLSTATEs, the extended protocol with
//! parameters and binary results, sessions that do not leak, DDL that lasts.

use tokio_postgres::error::SqlState;

use crate::support::{TestServer, generated_root, run_models};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_sqlstate_clients_branch_on() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start(root.path()).await;
    let c = server.client().await;
    let code =
        |r: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>| r.unwrap_err().code().cloned();
    assert_eq!(
        code(c.query("SELECT * FROM nope", &[]).await),
        Some(SqlState::UNDEFINED_TABLE)
    );
    assert_eq!(
        code(c.query("SELECT nope FROM events", &[]).await),
        Some(SqlState::UNDEFINED_COLUMN)
    );
    assert_eq!(
        code(c.query("SELEC 1", &[]).await),
        Some(SqlState::SYNTAX_ERROR)
    );
    assert_eq!(
        code(c.query("SELECT no_such_function(1)", &[]).await),
        Some(SqlState::UNDEFINED_FUNCTION)
    );
    assert_eq!(
        code(c.query("CREATE VIEW nowhere.v AS SELECT 1", &[]).await),
        Some(SqlState::INVALID_SCHEMA_NAME)
    );
    assert_eq!(
        code(
            c.query("INSERT INTO events (message_id) VALUES ('x')", &[])
                .await
        ),
        Some(SqlState::FEATURE_NOT_SUPPORTED)
    );
    // The connection is still usable after errors.
    let one: i64 = c.query_one("SELECT 1::bigint", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_parameters_and_return_binary_values() {
    let root = generated_root(300, 4).await;
    assert!(run_models(root.path(), None).await.failed().is_empty());
    let server = TestServer::start(root.path()).await;
    let c = server.client().await;
    let stmt = c
        .prepare(
            "SELECT profile_id, order_count, total_revenue, first_seen_at, birthday, consent_email \
             FROM profiles WHERE order_count >= $1 ORDER BY total_revenue DESC, profile_id LIMIT 3",
        )
        .await
        .unwrap();
    assert_eq!(stmt.params(), &[tokio_postgres::types::Type::INT8]);
    let rows = c.query(&stmt, &[&2i64]).await.unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert!(r.get::<_, String>(0).starts_with("p_"));
        assert!(r.get::<_, i64>(1) >= 2);
        assert!(r.get::<_, f64>(2) > 0.0);
        let _: Option<chrono::DateTime<chrono::Utc>> = r.get(3);
        let _: Option<chrono::NaiveDate> = r.get(4);
        let _: Option<bool> = r.get(5);
    }
    let by_text: i64 = c
        .query_one(
            "SELECT count(*) FROM profiles WHERE email = $1",
            &[&"nobody@nowhere.example"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_text, 0);

    // Simple protocol: several statements in one message.
    let messages = c
        .simple_query("SELECT 1 AS a; SELECT 'x' AS b, 2 AS c")
        .await
        .unwrap();
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(rows, vec!["1", "x"]);

    // An untyped NULL is NULL on the wire, not an empty string.
    let messages = c.simple_query("SELECT NULL AS n, '' AS e").await.unwrap();
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((r.get(0), r.get(1))),
            _ => None,
        })
        .unwrap();
    assert_eq!(row, (None, Some("")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_separate_and_ddl_persists() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start(root.path()).await;
    let (a, b) = (server.client().await, server.client().await);
    a.batch_execute("SET search_path = segments").await.unwrap();
    let mine: String = a.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    let theirs: String = b.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    assert_eq!(mine, "segments");
    assert_eq!(theirs, "\"$user\", public");

    a.batch_execute("CREATE SCHEMA marketing; CREATE VIEW marketing.v AS SELECT 1 AS one")
        .await
        .unwrap();
    let err = a.batch_execute("DROP SCHEMA marketing").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST));
    let err = a
        .batch_execute("CREATE VIEW marketing.v AS SELECT 2 AS two")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DUPLICATE_TABLE));
    a.batch_execute("CREATE OR REPLACE VIEW marketing.v AS SELECT 2 AS two")
        .await
        .unwrap();
    server.stop().await;

    let server = TestServer::start(root.path()).await;
    let c = server.client().await;
    let two: i64 = c
        .query_one("SELECT two FROM marketing.v", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(two, 2);
    c.batch_execute("DROP SCHEMA marketing CASCADE")
        .await
        .unwrap();
    let err = c.query("SELECT * FROM marketing.v", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    server.stop().await;
}
