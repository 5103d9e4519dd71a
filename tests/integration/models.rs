//! Model runs that fail: the previous version stays readable, the models
//! that read the failed one are skipped, nothing half-written is published.

use profiledb::models::run::ModelStatus;

use crate::support::{TestServer, copy_default_models, generated_root, run_models};

async fn profile_count(server: &TestServer) -> i64 {
    server
        .client()
        .await
        .query_one("SELECT count(*) FROM profiles", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_leaves_the_previous_table_readable() {
    let root = generated_root(300, 9).await;
    assert!(run_models(root.path(), None).await.failed().is_empty());
    let server = TestServer::start(root.path()).await;
    let before = profile_count(&server).await;
    assert!(before > 0);

    // A planning error: the message names the model, its file and the cause.
    let models = copy_default_models(&root.path().join("my_models"));
    std::fs::write(
        models.join("identity_map.sql"),
        "SELECT profile_id,\n       no_such_column\nFROM identity_graph\n",
    )
    .unwrap();
    let report = run_models(root.path(), Some(&models)).await;
    let by_name = |n: &str| report.models.iter().find(|m| m.model == n).unwrap();
    let failed = by_name("identity_map");
    assert_eq!(failed.status, ModelStatus::Failed);
    let message = failed.error.clone().unwrap();
    assert!(
        message.contains("model identity_map") && message.contains("identity_map.sql"),
        "{message}"
    );
    assert!(message.contains("no_such_column"), "{message}");
    assert_eq!(by_name("profiles").status, ModelStatus::Skipped);
    assert_eq!(
        by_name("identifiers").status,
        ModelStatus::Built,
        "independent models still build"
    );
    assert_eq!(profile_count(&server).await, before);

    // An execution error half-way through writing: the old version stays.
    std::fs::copy(
        root.path().join("my_models/identity_graph.sql"),
        root.path().join("my_models/identity_map.sql"),
    )
    .unwrap();
    std::fs::write(
        models.join("profiles.sql"),
        "SELECT profile_id, CAST(id_value AS BIGINT) AS not_a_number FROM identity_map",
    )
    .unwrap();
    let report = run_models(root.path(), Some(&models)).await;
    let failed = report
        .models
        .iter()
        .find(|m| m.model == "profiles")
        .unwrap();
    assert_eq!(failed.status, ModelStatus::Failed, "{:?}", failed);
    assert_eq!(profile_count(&server).await, before);
    let versions = std::fs::read_dir(root.path().join("data/public/profiles"))
        .unwrap()
        .count();
    assert_eq!(versions, 1, "the failed version's files were removed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_give_the_same_profile_ids() {
    let root = generated_root(300, 21).await;
    assert!(run_models(root.path(), None).await.failed().is_empty());
    let server = TestServer::start(root.path()).await;
    let ids = |c: tokio_postgres::Client| async move {
        c.query(
            "SELECT profile_id, id_type, id_value FROM identity_map ORDER BY 2, 3",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
            )
        })
        .collect::<Vec<_>>()
    };
    let first = ids(server.client().await).await;
    assert!(run_models(root.path(), None).await.failed().is_empty());
    let second = ids(server.client().await).await;
    assert_eq!(first, second);
    server.stop().await;
}
