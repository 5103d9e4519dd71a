//! The whole path: generate → run the shipped models → serve → query with
//! tokio-postgres and psql, checked against the generator's ground truth.

use std::collections::HashMap;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, UInt32Type};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::support::{TestServer, generated_root, run_models};

const PEOPLE: u64 = 3_000;

async fn truth(root: &std::path::Path, table: &str) -> Vec<RecordBatch> {
    let config = SessionConfig::new().set_bool(
        "datafusion.execution.parquet.schema_force_view_types",
        false,
    );
    let ctx = SessionContext::new_with_config(config);
    let dir = root.join("truth").join(table);
    ctx.register_parquet("t", dir.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    ctx.sql("SELECT * FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

fn choose2(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Pairwise precision and recall of `predicted` against `truth`, both maps
/// from an identifier to its cluster; an identifier missing on one side is
/// a cluster of its own there.
fn pairwise(
    truth: &HashMap<(String, String), String>,
    predicted: &HashMap<(String, String), String>,
) -> (f64, f64) {
    let mut keys: Vec<&(String, String)> = truth.keys().chain(predicted.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut cells: HashMap<(String, String), u64> = HashMap::new();
    let mut by_truth: HashMap<String, u64> = HashMap::new();
    let mut by_pred: HashMap<String, u64> = HashMap::new();
    for k in keys {
        let t = truth
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("only-predicted:{k:?}"));
        let p = predicted
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("only-truth:{k:?}"));
        *cells.entry((t.clone(), p.clone())).or_default() += 1;
        *by_truth.entry(t).or_default() += 1;
        *by_pred.entry(p).or_default() += 1;
    }
    let tp: u64 = cells.values().map(|&n| choose2(n)).sum();
    let true_pairs: u64 = by_truth.values().map(|&n| choose2(n)).sum();
    let pred_pairs: u64 = by_pred.values().map(|&n| choose2(n)).sum();
    let precision = if pred_pairs == 0 {
        1.0
    } else {
        tp as f64 / pred_pairs as f64
    };
    let recall = if true_pairs == 0 {
        1.0
    } else {
        tp as f64 / true_pairs as f64
    };
    (precision, recall)
}

type IdMap = HashMap<(String, String), String>;

/// The truth (identifier → person) and identity_map (identifier → profile).
async fn identity_maps(root: &std::path::Path, client: &tokio_postgres::Client) -> (IdMap, IdMap) {
    let mut predicted = HashMap::new();
    for row in client
        .query(
            "SELECT profile_id, id_type, id_value FROM identity_map",
            &[],
        )
        .await
        .unwrap()
    {
        predicted.insert(
            (row.get::<_, String>(1), row.get::<_, String>(2)),
            row.get::<_, String>(0),
        );
    }
    let mut truth_ids = HashMap::new();
    for b in truth(root, "identifiers").await {
        let (p, t, v) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
            b.column(2).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            truth_ids.insert(
                (t.value(i).to_owned(), v.value(i).to_owned()),
                p.value(i).to_owned(),
            );
        }
    }
    (truth_ids, predicted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_orders_and_revenue_match_the_truth() {
    let root = generated_root(PEOPLE, 11).await;
    let report = run_models(root.path(), None).await;
    assert!(
        report.failed().is_empty(),
        "models failed: {:?}",
        report.failed()
    );

    let server = TestServer::start(root.path()).await;
    let client = server.client().await;

    // Identity: pairwise precision and recall against the truth.
    let (truth_ids, predicted) = identity_maps(root.path(), &client).await;
    let missing: Vec<_> = truth_ids
        .keys()
        .filter(|k| !predicted.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "identifiers the truth links but identity_map lacks: {missing:?}"
    );
    type Identifier = (String, String);
    let mut profiles_of: HashMap<&str, Vec<(&Identifier, &str)>> = HashMap::new();
    for (k, person) in &truth_ids {
        profiles_of
            .entry(person.as_str())
            .or_default()
            .push((k, predicted[k].as_str()));
    }
    let split: Vec<_> = profiles_of
        .iter()
        .filter(|(_, ids)| ids.iter().any(|(_, p)| *p != ids[0].1))
        .take(3)
        .collect();
    let (precision, recall) = pairwise(&truth_ids, &predicted);
    if recall < 1.0 {
        println!("people split across profiles (first 3): {split:#?}");
    }
    println!(
        "identity precision {precision:.6} recall {recall:.6} over {} identifiers",
        truth_ids.len()
    );
    assert_eq!((precision, recall), (1.0, 1.0));

    // Orders and revenue per person, each order counted once across sources.
    let mut profiles = HashMap::new();
    for row in client
        .query(
            "SELECT profile_id, order_count, total_revenue FROM profiles",
            &[],
        )
        .await
        .unwrap()
    {
        profiles.insert(
            row.get::<_, String>(0),
            (row.get::<_, i64>(1), row.get::<_, f64>(2)),
        );
    }
    let mut person_profile: HashMap<&str, &str> = HashMap::new();
    for (k, person) in &truth_ids {
        person_profile.insert(person.as_str(), predicted[k].as_str());
    }
    let (mut checked, mut truth_orders) = (0, 0u64);
    for b in truth(root.path(), "people").await {
        let person = b.column(0).as_string::<i32>();
        let orders = b.column(1).as_primitive::<UInt32Type>();
        let revenue = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            truth_orders += u64::from(orders.value(i));
            let Some(profile) = person_profile.get(person.value(i)) else {
                assert_eq!(
                    orders.value(i),
                    0,
                    "{} has orders but no identifiers",
                    person.value(i)
                );
                continue;
            };
            let (count, rev) = profiles[*profile];
            assert_eq!(
                count,
                i64::from(orders.value(i)),
                "order_count of {}",
                person.value(i)
            );
            assert!(
                (rev - revenue.value(i)).abs() < 0.005,
                "revenue of {}: {rev} vs {}",
                person.value(i),
                revenue.value(i)
            );
            checked += 1;
        }
    }
    let total: i64 = profiles.values().map(|(c, _)| c).sum();
    assert_eq!(
        total as u64, truth_orders,
        "every order is attributed exactly once"
    );
    println!(
        "order_count and total_revenue match the truth for {checked} people, {truth_orders} orders"
    );

    // Nothing is dropped silently: junk values and shared devices are recorded.
    let junk: i64 = client
        .query_one(
            "SELECT count(*) FROM identity_rejections WHERE rule IN ('junk_values', 'blocked_values', 'blocked_pattern')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let shared: i64 = client
        .query_one(
            "SELECT count(*) FROM identity_rejections WHERE rule = 'shared_identifier' AND id_type = 'device_id'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(junk > 0, "junk ids are reported");
    assert_eq!(
        shared as u64,
        PEOPLE / profiledb::generate::person::HOUSEHOLD_EVERY,
        "one shared iPad per household"
    );

    // explain_identity shows the chain between two identifiers of one person.
    let (person, ids) = profiles_of
        .iter()
        .filter(|(_, ids)| ids.len() >= 4)
        .min_by_key(|(p, _)| **p)
        .expect("someone with four identifiers");
    let mut ids: Vec<&(String, String)> = ids.iter().map(|(k, _)| *k).collect();
    ids.sort();
    let (a, b) = (
        format!("{}:{}", ids[0].0, ids[0].1),
        format!("{}:{}", ids[ids.len() - 1].0, ids[ids.len() - 1].1),
    );
    // Table-function arguments are literals (parameters are not bound into them).
    let chain = client
        .query(
            &format!(
                "SELECT from_type || ':' || from_value, to_type || ':' || to_value, explanation \
                 FROM explain_identity('{a}', '{b}') ORDER BY step"
            ),
            &[],
        )
        .await
        .unwrap();
    assert!(!chain.is_empty(), "{person}: no chain from {a} to {b}");
    assert_eq!(chain[0].get::<_, String>(0), a);
    assert_eq!(chain[chain.len() - 1].get::<_, String>(1), b);
    assert!(chain.iter().all(|r| {
        r.get::<_, String>(2)
            .starts_with("linked: seen together in ")
    }));

    // The first household's two members share an iPad: explain names it.
    let user_of = |person: &str| {
        truth_ids
            .iter()
            .find(|((t, _), p)| t == "user_id" && p.as_str() == person)
            .map(|((_, v), _)| v.clone())
            .unwrap()
    };
    let (u0, u1) = (user_of("person_00000000"), user_of("person_00000001"));
    let why = client
        .query(
            &format!("SELECT from_type, explanation FROM explain_identity('user_id:{u0}', 'user_id:{u1}')"),
            &[],
        )
        .await
        .unwrap();
    assert!(!why.is_empty());
    assert!(
        why.iter().any(|r| r.get::<_, String>(0) == "device_id"
            && r.get::<_, String>(1)
                .contains("rejected by rule shared_identifier")),
        "{:?}",
        why.iter()
            .map(|r| r.get::<_, String>(1))
            .collect::<Vec<_>>()
    );

    // Graph health as SQL agrees with the tables it summarises.
    let health = |section: &'static str| {
        let c = &client;
        async move {
            c.query(
                "SELECT item, value FROM identity_health WHERE section = $1",
                &[&section],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect::<HashMap<String, i64>>()
        }
    };
    let summary = health("summary").await;
    assert_eq!(summary["profiles"], profiles.len() as i64);
    assert_eq!(summary["identifiers"], predicted.len() as i64);
    assert_eq!(
        health("profile_size").await.values().sum::<i64>(),
        profiles.len() as i64
    );
    assert_eq!(
        health("identifiers_by_type").await.values().sum::<i64>(),
        predicted.len() as i64
    );
    assert_eq!(
        health("rejections_by_rule").await.values().sum::<i64>(),
        summary["rejections"]
    );
    let largest = health("largest_profiles").await;
    assert_eq!(largest.len(), 10);
    assert_eq!(
        largest.values().max().copied(),
        Some(summary["largest_profile_identifiers"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_describes_and_keeps_a_segment_across_restarts() {
    let root = generated_root(400, 5).await;
    assert!(run_models(root.path(), None).await.failed().is_empty());
    let server = TestServer::start(root.path()).await;

    let (ok, out, err) = server.psql(&["-c", "\\dt"]);
    assert!(ok, "{err}");
    for table in [
        "profiles",
        "identity_map",
        "events",
        "orders",
        "crm_contacts",
    ] {
        assert!(out.contains(table), "\\dt lacks {table}:\n{out}");
    }
    // The graph's audit relations are views of it.
    let (ok, out, err) = server.psql(&["-c", "\\dv"]);
    assert!(ok, "{err}");
    for view in ["identity_rejections", "identity_links", "profile_redirects"] {
        assert!(out.contains(view), "\\dv lacks {view}:\n{out}");
    }
    let (ok, out, err) = server.psql(&["-c", "\\d profiles"]);
    assert!(ok, "{err}");
    assert!(out.contains("Table \"public.profiles\""), "{out}");
    assert!(
        out.contains("total_revenue") && out.contains("double precision"),
        "{out}"
    );
    assert!(
        out.contains("first_seen_at") && out.contains("timestamp with time zone"),
        "{out}"
    );

    let (ok, _, err) = server.psql(&[
        "-c",
        "CREATE VIEW segments.big_spenders AS SELECT profile_id FROM profiles WHERE total_revenue > 500",
    ]);
    assert!(ok, "{err}");
    let count = |s: &TestServer| {
        let (ok, out, err) = s.psql(&["-At", "-c", "SELECT count(*) FROM segments.big_spenders"]);
        assert!(ok, "{err}");
        out.trim().parse::<i64>().unwrap()
    };
    let before = count(&server);
    assert!(before > 0, "some profiles spent more than 500");
    let (ok, out, _) = server.psql(&["-c", "\\dv segments.*"]);
    assert!(ok && out.contains("big_spenders"), "{out}");
    server.stop().await;

    let restarted = TestServer::start(root.path()).await;
    assert_eq!(count(&restarted), before, "the segment survives a restart");
    let (ok, _, err) = restarted.psql(&["-c", "SELECT * FROM no_such_table"]);
    assert!(
        !ok && err.contains("relation \"no_such_table\" does not exist"),
        "{err}"
    );
    restarted.stop().await;
}

/// Identity resolution at a larger scale than the spine, with the shipped
/// rules: every person one profile, no two people merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_is_exact_on_twenty_thousand_people() {
    let root = generated_root(20_000, 29).await;
    assert!(run_models(root.path(), None).await.failed().is_empty());
    let server = TestServer::start(root.path()).await;
    let client = server.client().await;
    let (truth_ids, predicted) = identity_maps(root.path(), &client).await;
    assert!(truth_ids.keys().all(|k| predicted.contains_key(k)));
    let (precision, recall) = pairwise(&truth_ids, &predicted);
    println!(
        "20k people: identity precision {precision:.6} recall {recall:.6} over {} identifiers",
        truth_ids.len()
    );
    assert_eq!((precision, recall), (1.0, 1.0));
    server.stop().await;
}
