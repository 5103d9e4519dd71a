//! The DDL and DML dbt issues, through psql and tokio-postgres against a
//! live server: tables created from queries and from column lists, INSERT,
//! DELETE with a subquery, TRUNCATE, renames, comments, GRANT, and
//! temporary tables that other sessions never see and that go with their
//! session.

use std::time::Duration;

use crate::support::{TestServer, generated_root, run_models};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_created_written_renamed_and_commented() {
    let root = generated_root(300, 31).await;
    run_models(root.path(), None).await;
    let server = TestServer::start(root.path()).await;
    let client = server.client().await;
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get::<_, i64>(0)
        }
    };

    client.batch_execute("CREATE SCHEMA mart").await.unwrap();
    let created = client
        .execute(
            "CREATE TABLE mart.buyers AS (SELECT profile_id, order_count FROM profiles WHERE order_count > 0)",
            &[],
        )
        .await
        .unwrap();
    let buyers = count("SELECT count(*) FROM profiles WHERE order_count > 0").await;
    assert!(buyers > 0);
    assert_eq!(created as i64, buyers, "CREATE TABLE AS reports SELECT n");
    // As in PostgreSQL, CREATE TABLE AS declares no column NOT NULL.
    let nullable: Vec<String> = client
        .query(
            "SELECT is_nullable FROM information_schema.columns \
             WHERE table_schema = 'mart' AND table_name = 'buyers'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(nullable, ["YES", "YES"]);
    let err = client
        .batch_execute("CREATE TABLE mart.buyers AS SELECT 1 AS x")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P07");
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS mart.buyers AS SELECT 1 AS x")
        .await
        .unwrap();

    // Column-list tables, INSERT … VALUES with parameters and INSERT … SELECT.
    client
        .batch_execute("CREATE TABLE mart.notes (id bigint NOT NULL, note varchar, at timestamptz)")
        .await
        .unwrap();
    let inserted = client
        .execute(
            "INSERT INTO mart.notes (id, note) VALUES ($1, $2), ($3, NULL)",
            &[&1_i64, &"first", &2_i64],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 2);
    let inserted = client
        .execute(
            "INSERT INTO mart.notes (id, note) SELECT order_count, profile_id FROM mart.buyers",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(inserted as i64, buyers);
    assert_eq!(count("SELECT count(*) FROM mart.notes").await, buyers + 2);
    let declared: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, is_nullable::text FROM information_schema.columns \
             WHERE table_schema = 'mart' AND table_name = 'notes' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(declared[0], ("id".to_owned(), "NO".to_owned()));
    assert_eq!(declared[1], ("note".to_owned(), "YES".to_owned()));

    // DELETE with a subquery (dbt's delete+insert), then with a plain
    // condition that matches NULLs only through IS NULL.
    let deleted = client
        .execute(
            "DELETE FROM mart.notes AS d WHERE (note) IN (SELECT profile_id FROM mart.buyers)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(deleted as i64, buyers);
    assert_eq!(
        client
            .execute("DELETE FROM mart.notes WHERE note = 'nobody'", &[])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        client
            .execute("DELETE FROM mart.notes WHERE note IS NULL", &[])
            .await
            .unwrap(),
        1
    );
    let left: Vec<(i64, String)> = client
        .query("SELECT id, note FROM mart.notes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(left, [(1, "first".to_owned())]);

    // Raw sources and views are not written to.
    let err = client
        .batch_execute("INSERT INTO events (message_id) VALUES ('x')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "0A000", "{err:?}");

    // dbt's swap: build beside, move the old one away, rename, drop backup;
    // a view over the table keeps reading it by name.
    client
        .batch_execute(
            "CREATE VIEW mart.top AS SELECT profile_id FROM mart.buyers WHERE order_count > 1;
             CREATE TABLE mart.buyers__dbt_tmp AS (SELECT profile_id, order_count + 1 AS order_count FROM profiles WHERE order_count > 0);
             ALTER TABLE mart.buyers RENAME TO buyers__dbt_backup;
             ALTER TABLE mart.buyers__dbt_tmp RENAME TO buyers;
             DROP TABLE IF EXISTS mart.buyers__dbt_backup CASCADE;",
        )
        .await
        .unwrap();
    assert_eq!(count("SELECT count(*) FROM mart.top").await, buyers);
    let err = client
        .batch_execute("ALTER TABLE mart.notes RENAME TO buyers")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P07");
    client
        .batch_execute("ALTER TABLE mart.top RENAME TO best")
        .await
        .unwrap();
    assert_eq!(count("SELECT count(*) FROM mart.best").await, buyers);

    // Comments, as psql and dbt docs read them; '' removes one.
    client
        .batch_execute(
            "COMMENT ON TABLE mart.buyers IS 'People who bought';
             COMMENT ON COLUMN mart.buyers.order_count IS $$Orders, plus one$$;
             COMMENT ON VIEW mart.best IS 'Repeat buyers';
             GRANT SELECT ON mart.buyers TO PUBLIC;
             REVOKE ALL ON mart.buyers FROM PUBLIC;",
        )
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT obj_description('mart.buyers'::regclass), \
                    col_description('mart.buyers'::regclass, 2), \
                    obj_description('mart.best'::regclass)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("People who bought")
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("Orders, plus one")
    );
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("Repeat buyers")
    );
    let err = client
        .batch_execute("COMMENT ON COLUMN mart.buyers.nope IS 'x'")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42703");
    // A new version of the table keeps its comments.
    client
        .batch_execute("INSERT INTO mart.buyers VALUES ('p-new', 9)")
        .await
        .unwrap();
    let (ok, out, err) = server.psql(&["-c", "\\d+ mart.buyers", "-c", "\\dt+ mart.*"]);
    assert!(ok, "{err}");
    assert!(out.contains("Orders, plus one"), "{out}");
    assert!(out.contains("People who bought"), "{out}");
    client
        .batch_execute("COMMENT ON TABLE mart.buyers IS ''")
        .await
        .unwrap();
    let gone: Option<String> = client
        .query_one("SELECT obj_description('mart.buyers'::regclass)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(gone, None);

    client.batch_execute("TRUNCATE mart.buyers").await.unwrap();
    assert_eq!(count("SELECT count(*) FROM mart.buyers").await, 0);
    // Everything survives a restart: it is all in the storage root.
    let port = server.addr.port();
    server.stop().await;
    let server = TestServer::start(root.path()).await;
    assert_ne!(server.addr.port(), 0);
    let client = server.client().await;
    let notes: i64 = client
        .query_one("SELECT count(*) FROM mart.notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(notes, 1, "(was on port {port})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_tables_belong_to_their_session() {
    let root = generated_root(200, 32).await;
    run_models(root.path(), None).await;
    let server = TestServer::start(root.path()).await;
    let mine = server.client().await;
    let other = server.client().await;

    mine.batch_execute(
        "CREATE TEMPORARY TABLE picks AS (SELECT profile_id FROM profiles LIMIT 5);
         INSERT INTO picks SELECT profile_id FROM profiles LIMIT 2;
         CREATE TEMP TABLE profiles AS SELECT 1 AS shadow;",
    )
    .await
    .unwrap();
    let n: i64 = mine
        .query_one("SELECT count(*) FROM picks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);
    let n: i64 = mine
        .query_one("SELECT count(*) FROM pg_temp.picks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);
    // A temporary table hides a permanent one of the same name, for its
    // session only.
    let shadow: Vec<String> = mine
        .query("SELECT column_name::text FROM information_schema.columns WHERE table_name = 'profiles' AND table_schema LIKE 'pg_temp_%'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(shadow, ["shadow"]);
    let mine_profiles = mine.query("SELECT * FROM profiles", &[]).await.unwrap();
    assert_eq!(mine_profiles.len(), 1);
    let theirs: i64 = other
        .query_one("SELECT count(*) FROM profiles", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(theirs, 200);
    let err = other
        .query_one("SELECT count(*) FROM picks", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    // pg_class marks them [t]emporary; the owner sees its own schema as
    // not "other", the other session does.
    let (persistence, other_temp): (String, bool) = {
        let r = other
            .query_one(
                "SELECT c.relpersistence::text, pg_is_other_temp_schema(c.relnamespace) \
                 FROM pg_class c WHERE c.relname = 'picks'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((persistence.as_str(), other_temp), ("t", true));
    let own: bool = mine
        .query_one(
            "SELECT pg_is_other_temp_schema(c.relnamespace) FROM pg_class c WHERE c.relname = 'picks'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!own);

    mine.batch_execute("DROP TABLE profiles").await.unwrap();
    assert_eq!(
        mine.query("SELECT * FROM profiles", &[])
            .await
            .unwrap()
            .len(),
        200,
        "dropping the temporary table uncovers the permanent one"
    );
    drop(mine);
    // The session's end drops its temporary tables.
    let mut left = i64::MAX;
    for _ in 0..100 {
        left = other
            .query_one(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname LIKE 'pg_temp_%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "temporary tables outlived their session");
}
