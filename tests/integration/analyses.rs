//! The analyses (`funnel`, `paths_after`, `cohort_retention`) read through
//! the wire, checked against the same analyses computed here, in Rust,
//! from the rows of `profile_events`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate};

use crate::support::{TestServer, generated_root, run_models, text_rows};

/// Every row of a query, as its values (NULL as `∅`).
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    text_rows(client, sql)
        .await
        .into_iter()
        .map(|r| r.split('|').map(str::to_owned).collect())
        .collect()
}

/// (profile, step, µs, message id), in each profile's order.
type Event = (String, String, i64, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funnels_paths_and_retention_match_a_direct_computation() {
    let data = generated_root(500, 41).await;
    run_models(data.path(), None).await;
    let server = TestServer::start(data.path()).await;
    let client = server.client().await;
    let mut events: Vec<Event> = rows(
        &client,
        "SELECT profile_id, coalesce(event, type), CAST(\"timestamp\" AS BIGINT) AS micros, message_id \
         FROM profile_events",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone(), r[2].parse().unwrap(), r[3].clone()))
    .collect();
    events.sort_by(|a, b| (&a.0, a.2, &a.3).cmp(&(&b.0, b.2, &b.3)));
    let mut by_profile: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_profile.entry(e.0.as_str()).or_default().push(e);
    }
    assert!(by_profile.len() > 300, "{}", by_profile.len());

    // Funnel: from each profile's first step-one event, each next step at
    // or after the previous one, within the window of the first.
    let steps = ["page", "Product Viewed", "Order Completed"];
    let window = 90 * 86_400_000_000i64;
    let mut reached = [0i64; 3];
    for list in by_profile.values() {
        let Some(first) = list.iter().find(|e| e.1 == steps[0]) else {
            continue;
        };
        reached[0] += 1;
        let (start, mut at) = (first.2, first.2);
        for (i, step) in steps.iter().enumerate().skip(1) {
            match list
                .iter()
                .find(|e| e.1 == *step && e.2 >= at && e.2 <= start + window)
            {
                Some(e) => {
                    reached[i] += 1;
                    at = e.2;
                }
                None => break,
            }
        }
    }
    let funnel = rows(
        &client,
        "SELECT step, event, profiles, dropped_off FROM \
         funnel('90 days', 'page', 'Product Viewed', 'Order Completed') ORDER BY step",
    )
    .await;
    let expected: Vec<Vec<String>> = (0..3)
        .map(|i| {
            vec![
                (i + 1).to_string(),
                steps[i].to_owned(),
                reached[i].to_string(),
                if i == 0 {
                    0
                } else {
                    reached[i - 1] - reached[i]
                }
                .to_string(),
            ]
        })
        .collect();
    assert_eq!(funnel, expected);
    assert!(reached[2] > 0, "{reached:?}");

    // Paths: the two events after each profile's first `Product Viewed`.
    let mut paths: BTreeMap<String, i64> = BTreeMap::new();
    for list in by_profile.values() {
        let Some(i) = list.iter().position(|e| e.1 == "Product Viewed") else {
            continue;
        };
        let next: Vec<&str> = list[i + 1..].iter().take(2).map(|e| e.1.as_str()).collect();
        let path = if next.is_empty() {
            "(end)".to_owned()
        } else {
            next.join(" → ")
        };
        *paths.entry(path).or_default() += 1;
    }
    let got: BTreeMap<String, i64> = rows(
        &client,
        "SELECT path, profiles FROM paths_after('Product Viewed', 2)",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().unwrap()))
    .collect();
    assert_eq!(got, paths);

    // Monthly cohorts of first activity, and who is active in later months.
    let month = |micros: i64| {
        let t = DateTime::from_timestamp_micros(micros).unwrap();
        (t.year(), t.month())
    };
    let mut active: BTreeMap<((i32, u32), i64), BTreeSet<&str>> = BTreeMap::new();
    let mut sizes: BTreeMap<(i32, u32), i64> = BTreeMap::new();
    for (profile, list) in &by_profile {
        let cohort = month(list[0].2);
        *sizes.entry(cohort).or_default() += 1;
        for e in list {
            let (y, m) = month(e.2);
            let offset = i64::from((y - cohort.0) * 12) + i64::from(m) - i64::from(cohort.1);
            active.entry((cohort, offset)).or_default().insert(profile);
        }
    }
    let expected: Vec<Vec<String>> = active
        .iter()
        .map(|((cohort, offset), who)| {
            let day = NaiveDate::from_ymd_opt(cohort.0, cohort.1, 1).unwrap();
            vec![
                format!("{day} 00:00:00+00"),
                offset.to_string(),
                who.len().to_string(),
                sizes[cohort].to_string(),
            ]
        })
        .collect();
    let got = rows(
        &client,
        "SELECT cohort, period_offset, active_profiles, cohort_size \
         FROM cohort_retention('month') ORDER BY cohort, period_offset",
    )
    .await;
    assert_eq!(got, expected);

    // Bad arguments are plain errors.
    let e = client
        .simple_query("SELECT * FROM funnel('a week', 'page', 'identify')")
        .await
        .unwrap_err();
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("'a week' is not a window"),
        "{e:?}"
    );
    server.stop().await;
}
