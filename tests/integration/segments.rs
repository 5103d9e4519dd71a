//! Segments: views in schema `segments`, snapshotted and diffed by every
//! `profiledb run`, read back through the wire: membership, history with
//! entered/exited times, size over time, overlap; segments built on
//! segments; cycles refused.

use std::path::Path;

use crate::support::{TestServer, generated_root, profiledb, text_rows};

fn run(root: &Path) -> String {
    let (ok, log) = profiledb(root, &["run"]);
    assert!(ok, "{log}");
    log
}

async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    text_rows(client, sql).await
}

async fn one(client: &tokio_postgres::Client, sql: &str) -> i64 {
    rows(client, sql).await[0].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_record_who_entered_and_exited() {
    let data = generated_root(400, 21).await;
    let root = data.path();
    run(root);
    let server = TestServer::start(root).await;
    let (ok, _, err) = server.psql(&[
        "-c",
        "CREATE VIEW segments.buyers AS SELECT profile_id FROM profiles WHERE order_count > 0",
        "-c",
        "CREATE VIEW segments.champions AS \
         SELECT profile_id FROM profiles WHERE rfm_segment = 'champions'",
        "-c",
        "CREATE VIEW segments.big_spenders AS SELECT profile_id FROM segments.buyers \
         JOIN profiles USING (profile_id) WHERE total_revenue > 300",
        "-c",
        "CREATE VIEW segments.no_ids AS SELECT user_id FROM profiles",
    ]);
    assert!(ok, "{err}");
    // A segment that would read itself is refused, naming the cycle.
    let client = server.client().await;
    let e = client
        .simple_query(
            "CREATE OR REPLACE VIEW segments.buyers AS SELECT profile_id FROM segments.big_spenders",
        )
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42P17", "{db:?}");
    assert!(
        db.message()
            .contains("segments.buyers → segments.big_spenders → segments.buyers"),
        "{}",
        db.message()
    );
    drop(client);
    server.stop().await;

    // The first refresh: everyone enters.
    let log = run(root);
    let line = log.lines().find(|l| l.contains("segments.buyers")).unwrap();
    assert!(line.contains("(+") && line.contains(" -0)"), "{line}");
    let broken = log.lines().find(|l| l.contains("segments.no_ids")).unwrap();
    assert!(
        broken.contains("FAIL") && broken.contains("profile_id"),
        "{broken}"
    );

    let server = TestServer::start(root).await;
    let client = server.client().await;
    let buyers = one(&client, "SELECT count(*) FROM segments.buyers").await;
    let champions = one(&client, "SELECT count(*) FROM segments.champions").await;
    let big = one(&client, "SELECT count(*) FROM segments.big_spenders").await;
    assert!(
        buyers > big && big > 0 && champions > 0,
        "{buyers} {big} {champions}"
    );
    assert_eq!(
        rows(
            &client,
            "SELECT segment, count(*) FROM segment_membership GROUP BY 1 ORDER BY 1"
        )
        .await,
        [
            format!("big_spenders|{big}"),
            format!("buyers|{buyers}"),
            format!("champions|{champions}"),
        ]
    );
    // Every big spender is a buyer: the overlap says so.
    assert_eq!(
        rows(
            &client,
            "SELECT members_a, members_b, both_members FROM segment_overlap \
             WHERE segment_a = 'big_spenders' AND segment_b = 'buyers'"
        )
        .await,
        [format!("{big}|{buyers}|{big}")]
    );
    assert_eq!(
        one(
            &client,
            "SELECT count(*) FROM segment_history WHERE exited_at IS NULL"
        )
        .await,
        buyers + big + champions
    );
    server.stop().await;

    // Narrower definitions: members leave, and the history says when.
    let server = TestServer::start(root).await;
    let (ok, _, err) = server.psql(&[
        "-c",
        "CREATE OR REPLACE VIEW segments.buyers AS \
         SELECT profile_id FROM profiles WHERE order_count > 1",
        "-c",
        "DROP VIEW segments.champions",
    ]);
    assert!(ok, "{err}");
    server.stop().await;
    run(root);
    let server = TestServer::start(root).await;
    let client = server.client().await;
    let now_buyers = one(&client, "SELECT count(*) FROM segments.buyers").await;
    assert!(now_buyers < buyers);
    let left = one(
        &client,
        "SELECT count(*) FROM segment_history WHERE segment = 'buyers' AND exited_at IS NOT NULL",
    )
    .await;
    assert_eq!(left, buyers - now_buyers);
    // The members who stayed keep their first `since`.
    assert_eq!(
        one(
            &client,
            "SELECT count(DISTINCT since) FROM segment_membership WHERE segment = 'buyers'"
        )
        .await,
        1
    );
    // A dropped segment's members all exit.
    assert_eq!(
        one(
            &client,
            "SELECT count(*) FROM segment_membership WHERE segment = 'champions'"
        )
        .await,
        0
    );
    assert_eq!(
        one(
            &client,
            "SELECT count(*) FROM segment_history WHERE segment = 'champions' AND exited_at IS NOT NULL"
        )
        .await,
        champions
    );
    // Size over time: one row per refresh.
    assert_eq!(
        rows(
            &client,
            "SELECT members, entered, exited FROM segment_stats WHERE segment = 'buyers' \
             ORDER BY refreshed_at"
        )
        .await,
        [
            format!("{buyers}|{buyers}|0"),
            format!("{now_buyers}|0|{}", buyers - now_buyers),
        ]
    );
    server.stop().await;
}
