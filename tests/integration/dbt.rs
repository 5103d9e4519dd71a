//! dbt-core with dbt-postgres, installed by the README test command, runs
//! a project of its own (`tests/clients/dbt_project`) against a live
//! server: `debug`, `seed`, `run` twice (the second swaps tables in by
//! rename and merges the incremental model by its unique key), `test` and
//! `docs generate`; the results are then checked with tokio-postgres.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestServer, generated_root, run_models};

/// The `dbt` of the virtualenv `scripts/test` prepared.
fn dbt() -> PathBuf {
    let python = std::env::var("PROFILEDB_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("PROFILEDB_TEST_PYTHON is not set: run the README test command (./scripts/test)")
    });
    Path::new(&python).with_file_name("dbt")
}

fn run_dbt(project: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new(dbt())
        .args(args)
        .args(["--project-dir", ".", "--profiles-dir", "."])
        .current_dir(project)
        .env("PROFILEDB_PORT", port.to_string())
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("DBT_USE_COLORS", "false")
        .output()
        .expect("run dbt");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let log = std::fs::read_to_string(project.join("logs/dbt.log")).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!("dbt {args:?} failed:\n{stdout}\n--- dbt.log (end) ---\n{tail}");
    }
    stdout
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbt_project_runs_tests_and_documents() {
    let root = generated_root(1_000, 41).await;
    run_models(root.path(), None).await;
    let server = TestServer::start(root.path()).await;
    let port = server.addr.port();
    let project = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/dbt_project"),
        project.path(),
    );
    let project = project.path();

    let out = run_dbt(project, port, &["debug"]);
    assert!(out.contains("All checks passed"), "{out}");
    let out = run_dbt(project, port, &["seed"]);
    assert!(out.contains("PASS=1"), "{out}");
    let out = run_dbt(project, port, &["run"]);
    assert!(out.contains("PASS=3"), "{out}");

    let client = server.client().await;
    let count = |sql: String| {
        let client = &client;
        async move {
            client
                .query_one(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get::<_, i64>(0)
        }
    };
    let expected_value = count(
        "SELECT count(*) FROM profiles p JOIN analytics.tiers t \
         ON p.total_revenue >= t.min_revenue AND p.total_revenue < t.max_revenue \
         WHERE p.order_count > 0"
            .into(),
    )
    .await;
    assert!(expected_value > 0);
    assert_eq!(
        count("SELECT count(*) FROM analytics.customer_value".into()).await,
        expected_value
    );

    // New and corrected orders land; the second run swaps the table model
    // in by rename and merges the incremental model by order_id.
    let (order_id, profile_id): (String, String) = {
        let r = client
            .query_one(
                "SELECT order_id, profile_id FROM orders_unified \
                 WHERE profile_id IS NOT NULL ORDER BY ordered_at DESC, order_id LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    client
        .execute(
            "DELETE FROM orders_unified WHERE order_id = $1",
            &[&order_id],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO orders_unified (order_id, profile_id, amount, currency, ordered_at) VALUES \
             ($1, $2, 12345.0, 'EUR', now()), ('late-order-1', $2, 7.5, 'EUR', now())",
            &[&order_id, &profile_id],
        )
        .await
        .unwrap();
    let out = run_dbt(project, port, &["run"]);
    assert!(out.contains("PASS=3"), "{out}");
    let orders = count(
        "SELECT count(DISTINCT order_id) FROM orders_unified WHERE profile_id IS NOT NULL".into(),
    )
    .await;
    assert_eq!(
        count("SELECT count(*) FROM analytics.profile_orders".into()).await,
        orders,
        "the incremental model holds each order once"
    );
    let amount: f64 = client
        .query_one(
            "SELECT amount FROM analytics.profile_orders WHERE order_id = $1",
            &[&order_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        amount, 12345.0,
        "the newer row of the order replaced the older"
    );
    assert_eq!(
        count("SELECT count(*) FROM analytics.gold_customers".into()).await,
        count("SELECT count(*) FROM analytics.customer_value WHERE tier = 'gold'".into()).await
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_class WHERE relname LIKE '%__dbt_%'".into()).await,
        0,
        "no intermediate or backup relation is left"
    );

    let out = run_dbt(project, port, &["test"]);
    assert!(out.contains("PASS=7"), "{out}");

    // persist_docs: descriptions are comments, and the catalog has them.
    let out = run_dbt(project, port, &["docs", "generate"]);
    assert!(out.contains("Catalog written"), "{out}");
    let catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.join("target/catalog.json")).unwrap())
            .unwrap();
    assert_eq!(
        catalog["errors"],
        serde_json::Value::Null,
        "{}",
        catalog["errors"]
    );
    let node = &catalog["nodes"]["model.profiledb_dbt.customer_value"];
    assert_eq!(node["metadata"]["type"], "BASE TABLE");
    assert_eq!(
        node["metadata"]["comment"],
        "One row per profile with orders, and its value tier."
    );
    assert_eq!(
        node["columns"]["profile_id"]["comment"],
        "The stable profile id."
    );
    assert_eq!(node["columns"]["order_count"]["type"], "bigint");
    assert_eq!(
        catalog["nodes"]["model.profiledb_dbt.gold_customers"]["metadata"]["type"],
        "VIEW"
    );
    assert_eq!(
        catalog["sources"]["source.profiledb_dbt.cdp.profiles"]["metadata"]["type"],
        "BASE TABLE"
    );
}
