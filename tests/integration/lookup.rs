//! Prepared point lookups are answered from a key index of the published
//! table (`engine::lookup`): the same rows as the planned query, through
//! new versions (INSERT, DELETE, a model run), NULL and missing keys,
//! LIMIT, integer and text keys, and counted in `pg_stat_user_tables`.

use crate::support::{TestServer, generated_root, run_models};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_point_lookups_use_the_key_index() {
    let root = generated_root(300, 71).await;
    run_models(root.path(), None).await;
    let server = TestServer::start(root.path()).await;
    let client = server.client().await;
    client
        .batch_execute(
            "CREATE TABLE ids AS SELECT row_number() OVER (ORDER BY profile_id) AS n, profile_id FROM profiles",
        )
        .await
        .unwrap();

    let by_id = client
        .prepare("SELECT profile_id, email, order_count, total_revenue FROM profiles WHERE profile_id = $1")
        .await
        .unwrap();
    let by_n = client
        .prepare("SELECT i.profile_id FROM ids AS i WHERE i.n = $1 LIMIT 1")
        .await
        .unwrap();
    // The same lookups without the fast path's shape (an extra condition
    // that is always true), planned and scanned.
    let planned = client
        .prepare("SELECT profile_id, email, order_count, total_revenue FROM profiles WHERE profile_id = $1 AND 1 = 1")
        .await
        .unwrap();

    let total: i64 = client
        .query_one("SELECT count(*) FROM ids", &[])
        .await
        .unwrap()
        .get(0);
    for n in [1i64, total / 2, total] {
        let id: String = client.query_one(&by_n, &[&n]).await.unwrap().get(0);
        let fast = client.query(&by_id, &[&id]).await.unwrap();
        let slow = client.query(&planned, &[&id]).await.unwrap();
        assert_eq!(fast.len(), 1, "{id}");
        assert_eq!(slow.len(), 1);
        for c in 0..2 {
            assert_eq!(
                fast[0].get::<_, Option<String>>(c),
                slow[0].get::<_, Option<String>>(c)
            );
        }
        assert_eq!(
            fast[0].get::<_, Option<i64>>(2),
            slow[0].get::<_, Option<i64>>(2)
        );
        assert_eq!(
            fast[0].get::<_, Option<f64>>(3),
            slow[0].get::<_, Option<f64>>(3)
        );
    }
    let none: Option<String> = None;
    assert!(client.query(&by_id, &[&none]).await.unwrap().is_empty());
    assert!(
        client
            .query(&by_id, &[&"p_missing"])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .query(&by_n, &[&(total + 1)])
            .await
            .unwrap()
            .is_empty()
    );

    // A new version is seen by the next lookup: rows added, rows deleted.
    client
        .batch_execute(&format!(
            "INSERT INTO ids VALUES ({}, 'p_new'), ({}, 'p_new')",
            total + 1,
            total + 1
        ))
        .await
        .unwrap();
    let rows = client.query(&by_n, &[&(total + 1)]).await.unwrap();
    assert_eq!(rows.len(), 1, "LIMIT 1 of the two rows with that key");
    assert_eq!(rows[0].get::<_, String>(0), "p_new");
    client
        .batch_execute("DELETE FROM ids WHERE n = 1")
        .await
        .unwrap();
    assert!(client.query(&by_n, &[&1i64]).await.unwrap().is_empty());
    // Scans read the new versions too (from memory once loaded).
    for _ in 0..2 {
        let n: i64 = client
            .query_one("SELECT count(*) FROM ids", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, total + 1, "all, two added, one deleted");
    }

    let counted: i64 = client
        .query_one(
            "SELECT idx_scan FROM pg_stat_user_tables WHERE relname = 'profiles'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        counted, 5,
        "3 found, NULL and a missing key; the planned ones are not"
    );
    server.stop().await;
}
