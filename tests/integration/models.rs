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

/// Two events files: one profile each, until a third row links them.
fn event_file(root: &std::path::Path, name: &str, rows: &[(&str, &str, &str, &str)]) {
    use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;
    type Row<'a> = (&'a str, &'a str, &'a str, &'a str);
    let col = |f: for<'a> fn(&Row<'a>) -> &'a str| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let day = |d: &str| 1_767_225_600_000_000 + d.parse::<i64>().unwrap() * 86_400_000_000;
    crate::support::write_parquet(
        &root.join("raw/events").join(name),
        vec![
            ("message_id", col(|r| r.0)),
            ("type", col(|_| "identify")),
            (
                "timestamp",
                Arc::new(
                    TimestampMicrosecondArray::from(
                        rows.iter().map(|r| day(r.1)).collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            ("anonymous_id", col(|r| r.2)),
            (
                "traits",
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| format!(r#"{{"email":"{}"}}"#, r.3))
                        .collect::<Vec<_>>(),
                )),
            ),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_ids_survive_merges_and_splits_with_redirects() {
    let root = tempfile::tempdir().unwrap();
    event_file(
        root.path(),
        "a.parquet",
        &[("e1", "1", "c1", "a@x.com"), ("e2", "2", "c2", "b@x.com")],
    );
    assert!(run_models(root.path(), None).await.failed().is_empty());
    let server = TestServer::start(root.path()).await;
    let c = server.client().await;
    let pid = |v: &'static str| {
        let c = &c;
        async move {
            c.query_one(
                "SELECT profile_id FROM identity_map WHERE id_value = $1",
                &[&v],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };
    let redirects = || {
        let c = &c;
        async move {
            c.query("SELECT old_profile_id, new_profile_id, reason FROM profile_redirects ORDER BY changed_at, old_profile_id", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2)))
                .collect::<Vec<_>>()
        }
    };
    let (a, b) = (pid("c1").await, pid("c2").await);
    assert_ne!(a, b);
    assert!(redirects().await.is_empty());

    // New data links them: the older profile's id survives, the other redirects.
    event_file(root.path(), "b.parquet", &[("e3", "3", "c2", "a@x.com")]);
    assert!(run_models(root.path(), None).await.failed().is_empty());
    assert_eq!(pid("c2").await, a);
    assert_eq!(pid("b@x.com").await, a);
    assert_eq!(
        redirects().await,
        vec![(b.clone(), a.clone(), "merge".to_owned())]
    );

    // Nothing new: nothing changes, and history is not repeated.
    assert!(run_models(root.path(), None).await.failed().is_empty());
    assert_eq!(pid("c2").await, a);
    assert_eq!(redirects().await.len(), 1);

    // The linking row is erased: the profile splits; one part keeps the id,
    // the other gets a new one (never an id used before) and a redirect.
    std::fs::remove_file(root.path().join("raw/events/b.parquet")).unwrap();
    assert!(run_models(root.path(), None).await.failed().is_empty());
    let (a2, b2) = (pid("c1").await, pid("c2").await);
    assert_eq!(a2, a, "the part ordered first keeps the id on a tie");
    assert!(b2 != a && b2 != b, "{b2}");
    let history = redirects().await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1], (a.clone(), b2.clone(), "split".to_owned()));
    server.stop().await;
}

/// `materialized='view'`: the model is a persisted view (relkind `v`) that
/// models after it read, and it reads the current version of what it
/// names; a table model may become a view and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_models_are_views_read_by_later_models() {
    let root = generated_root(200, 81).await;
    let models = copy_default_models(&root.path().join("my_models"));
    std::fs::write(
        models.join("loyal.sql"),
        "{{ config(materialized='view') }}\n\
         SELECT profile_id, order_count FROM {{ ref('profiles') }} WHERE order_count >= 2;\n",
    )
    .unwrap();
    std::fs::write(
        models.join("loyal_count.sql"),
        "SELECT count(*) AS n FROM {{ ref('loyal') }}",
    )
    .unwrap();
    let report = run_models(root.path(), Some(&models)).await;
    assert!(report.failed().is_empty(), "{:?}", report.failed());
    let loyal = report.models.iter().find(|m| m.model == "loyal").unwrap();
    assert_eq!(loyal.mode, profiledb::models::run::BuildMode::View);

    let server = TestServer::start(root.path()).await;
    let client = server.client().await;
    let kind: String = client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE relname = 'loyal'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "v");
    let expected: i64 = client
        .query_one("SELECT count(*) FROM profiles WHERE order_count >= 2", &[])
        .await
        .unwrap()
        .get(0);
    assert!(expected > 0);
    for sql in ["SELECT count(*) FROM loyal", "SELECT n FROM loyal_count"] {
        let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        assert_eq!(n, expected, "{sql}");
    }
    server.stop().await;

    // The view model becomes a table, then a view again.
    let view_sql = std::fs::read_to_string(models.join("loyal.sql")).unwrap();
    std::fs::write(
        models.join("loyal.sql"),
        view_sql.replace("materialized='view'", "materialized='table'"),
    )
    .unwrap();
    let report = run_models(root.path(), Some(&models)).await;
    assert!(report.failed().is_empty(), "{:?}", report.failed());
    let server = TestServer::start(root.path()).await;
    let (ok, out, err) = server.psql(&[
        "-At",
        "-c",
        "SELECT relkind FROM pg_class WHERE relname = 'loyal'",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "r");
    server.stop().await;
    std::fs::write(models.join("loyal.sql"), view_sql).unwrap();
    let report = run_models(root.path(), Some(&models)).await;
    assert!(report.failed().is_empty(), "{:?}", report.failed());
}

/// Seeds: each CSV of `<models>/seeds/` is a table (header, inferred
/// types) that models reference like any other; an unchanged CSV keeps its
/// version, and a broken one fails with its file named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_are_tables_models_read() {
    let root = generated_root(200, 82).await;
    let models = copy_default_models(&root.path().join("my_models"));
    run_models(root.path(), Some(&models)).await;
    let server = TestServer::start(root.path()).await;
    let client = server.client().await;
    let countries: Vec<String> = client
        .query(
            "SELECT DISTINCT country FROM profiles WHERE country IS NOT NULL ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let with_country: i64 = client
        .query_one("SELECT count(country) FROM profiles", &[])
        .await
        .unwrap()
        .get(0);
    server.stop().await;
    assert!(countries.len() > 1);

    std::fs::create_dir_all(models.join("seeds")).unwrap();
    let mut csv = String::from("country,region,weight\n");
    for (i, c) in countries.iter().enumerate() {
        csv.push_str(&format!(
            "{c},{},{}\n",
            if i % 2 == 0 { "even" } else { "odd" },
            i + 1
        ));
    }
    std::fs::write(models.join("seeds/country_regions.csv"), &csv).unwrap();
    std::fs::write(
        models.join("profiles_by_region.sql"),
        "SELECT r.region, count(*) AS n FROM {{ ref('profiles') }} p \
         JOIN {{ ref('country_regions') }} r ON p.country = r.country GROUP BY r.region",
    )
    .unwrap();
    let report = run_models(root.path(), Some(&models)).await;
    assert!(report.failed().is_empty(), "{:?}", report.failed());
    let order: Vec<&str> = report.models.iter().map(|m| m.model.as_str()).collect();
    let position = |m: &str| order.iter().position(|x| *x == m).unwrap();
    assert!(position("country_regions") < position("profiles_by_region"));

    let server = TestServer::start(root.path()).await;
    let client = server.client().await;
    let types: Vec<String> = client
        .query(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name = 'country_regions' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(types, ["text", "text", "bigint"]);
    let total: i64 = client
        .query_one("SELECT sum(n)::bigint FROM profiles_by_region", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, with_country);
    server.stop().await;

    // Unchanged: the seed keeps its version. Broken: the run says where.
    let report = run_models(root.path(), Some(&models)).await;
    let seed = report
        .models
        .iter()
        .find(|m| m.model == "country_regions")
        .unwrap();
    assert_eq!(seed.mode, profiledb::models::run::BuildMode::Unchanged);
    std::fs::write(
        models.join("seeds/country_regions.csv"),
        format!("{csv}XX,odd,1,extra\n"),
    )
    .unwrap();
    let report = run_models(root.path(), Some(&models)).await;
    let failed = report.failed();
    let seed = failed
        .iter()
        .find(|m| m.model == "country_regions")
        .expect("the seed fails");
    let error = seed.error.as_deref().unwrap();
    assert!(error.contains("country_regions.csv"), "{error}");
}
