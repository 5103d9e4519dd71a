//! Incremental merges through the CLI: models with a `unique_key` replace
//! the rows of the keys new raw files touch — by key, or by time batch
//! with late data inside a lookback window — and must equal a full
//! refresh of the same files, row for row, read through the wire.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};

use crate::support::{TestServer, profiledb, text_rows, write_parquet};

fn ok(root: &Path, args: &[&str]) -> String {
    let (success, log) = profiledb(root, args);
    assert!(success, "profiledb {args:?} failed:\n{log}");
    log
}

fn line<'a>(log: &'a str, model: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains(&format!(" {model} ")))
        .unwrap_or_else(|| panic!("no line for {model} in\n{log}"))
}

const MODELS: &[(&str, &str)] = &[
    (
        "daily_activity",
        "{{ config(materialized='incremental', unique_key=['anonymous_id', 'day'], \
         event_time='timestamp', lookback='3 days') }}\n\
         SELECT anonymous_id, date_trunc('day', timestamp) AS day, count(*) AS events, \
                count(DISTINCT event) AS kinds, max(timestamp) AS last_seen\n\
         FROM {{ source('raw', 'events') }}\n\
         WHERE anonymous_id IS NOT NULL\n\
         GROUP BY 1, 2\n",
    ),
    (
        "visitor_totals",
        "{{ config(materialized='incremental', unique_key='anonymous_id') }}\n\
         SELECT anonymous_id, count(*) AS events, min(timestamp) AS first_seen, \
                max(timestamp) AS last_seen\n\
         FROM events\n\
         GROUP BY anonymous_id\n",
    ),
    (
        "active_days",
        "SELECT anonymous_id, count(*) AS days FROM {{ ref('daily_activity') }} GROUP BY 1\n",
    ),
];

/// One landed file of events: (message id, anonymous id, time).
fn land(root: &Path, file: &str, events: &[(&str, Option<&str>, &str)]) {
    let at = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    };
    let text = |values: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    write_parquet(
        &root.join("raw/events").join(file),
        vec![
            (
                "message_id",
                text(events.iter().map(|e| Some(e.0)).collect()),
            ),
            ("type", text(vec![Some("track"); events.len()])),
            ("event", text(vec![Some("Late Landing"); events.len()])),
            (
                "timestamp",
                Arc::new(
                    TimestampMicrosecondArray::from(
                        events.iter().map(|e| at(e.2)).collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            ("anonymous_id", text(events.iter().map(|e| e.1).collect())),
        ],
    );
}

/// Every row of a query as text, sorted.
async fn rows(server: &TestServer, sql: &str) -> Vec<String> {
    let mut out = text_rows(&server.client().await, sql).await;
    out.sort();
    out
}

/// The models' tables in `root` equal those a full refresh of a copy
/// builds.
async fn equals_full_refresh(root: &Path, models: &Path, step: &str) {
    let scratch = root.with_extension("full");
    let _ = std::fs::remove_dir_all(&scratch);
    let status = Command::new("cp")
        .arg("-a")
        .arg(root)
        .arg(&scratch)
        .status()
        .unwrap();
    assert!(status.success());
    let models = models.to_str().unwrap();
    ok(&scratch, &["run", "--models", models, "--full-refresh"]);
    let (a, b) = (
        TestServer::start(root).await,
        TestServer::start(&scratch).await,
    );
    for (model, _) in MODELS {
        let sql = format!("SELECT * FROM {model}");
        let (merged, full) = (rows(&a, &sql).await, rows(&b, &sql).await);
        assert!(!full.is_empty(), "{step}: {model} is empty");
        assert_eq!(merged, full, "{step}: {model} differs from a full refresh");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_by_key_and_by_time_equal_a_full_refresh() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, models) = (tmp.path().join("root"), tmp.path().join("models"));
    std::fs::create_dir_all(&models).unwrap();
    for (name, sql) in MODELS {
        std::fs::write(models.join(format!("{name}.sql")), sql).unwrap();
    }
    let dir = models.to_str().unwrap();
    ok(
        &root,
        &[
            "generate",
            "--people",
            "300",
            "--seed",
            "5",
            "--as-of",
            "2026-06-30",
        ],
    );
    ok(&root, &["run", "--models", dir]);

    // A visitor with history, seen again today and two days late, a new
    // visitor, and an event without an anonymous id (a NULL key).
    let server = TestServer::start(&root).await;
    let known = rows(
        &server,
        "SELECT anonymous_id FROM visitor_totals WHERE anonymous_id IS NOT NULL \
         ORDER BY events DESC, anonymous_id LIMIT 1",
    )
    .await;
    let before = rows(
        &server,
        &format!(
            "SELECT events FROM visitor_totals WHERE anonymous_id = '{}'",
            known[0]
        ),
    )
    .await;
    server.stop().await;
    let known = known[0].as_str();
    land(
        &root,
        "landing-2.parquet",
        &[
            ("late-1", Some(known), "2026-06-30 12:00:00"),
            ("late-2", Some(known), "2026-06-28 09:30:00"),
            ("late-3", Some("cookie-newcomer"), "2026-06-30 12:05:00"),
            ("late-4", None, "2026-06-29 08:00:00"),
        ],
    );
    let log = ok(&root, &["run", "--models", dir]);
    for model in ["daily_activity", "visitor_totals"] {
        let l = line(&log, model);
        assert!(l.contains("(incremental: +"), "{l}");
        assert!(l.contains(" -"), "a merge replaces rows: {l}");
    }
    let server = TestServer::start(&root).await;
    let after = rows(
        &server,
        &format!("SELECT events FROM visitor_totals WHERE anonymous_id = '{known}'"),
    )
    .await;
    assert_eq!(
        after[0].parse::<i64>().unwrap(),
        before[0].parse::<i64>().unwrap() + 2
    );
    // One row per key: the merge replaced rows, it did not add a second.
    let repeats = rows(
        &server,
        "SELECT count(*) FROM (SELECT anonymous_id, day FROM daily_activity \
         GROUP BY 1, 2 HAVING count(*) > 1) t",
    )
    .await;
    assert_eq!(repeats, vec!["0".to_owned()]);
    server.stop().await;
    equals_full_refresh(&root, &models, "landing 2").await;

    // Data twelve days late: beyond the lookback, so the model is rebuilt.
    land(
        &root,
        "landing-3.parquet",
        &[
            ("late-5", Some(known), "2026-06-30 18:00:00"),
            ("late-6", Some(known), "2026-06-18 07:00:00"),
        ],
    );
    let log = ok(&root, &["run", "--models", dir]);
    let l = line(&log, "daily_activity");
    assert!(
        l.contains("rebuilt: late data: events from 2026-06-18 07:00:00")
            && l.contains("lookback of 3 days"),
        "{l}"
    );
    assert!(line(&log, "visitor_totals").contains("(incremental: +"));
    equals_full_refresh(&root, &models, "landing 3").await;

    // Nothing new: both versions stand.
    let log = ok(&root, &["run", "--models", dir]);
    assert!(
        line(&log, "visitor_totals").contains("(unchanged)"),
        "{log}"
    );

    // A key that is not unique fails the merge and keeps the last table.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("kinds.sql"),
        "{{ config(materialized='incremental', unique_key='event') }}\n\
         SELECT event, anonymous_id, count(*) AS n FROM events GROUP BY 1, 2\n",
    )
    .unwrap();
    let bad_dir = bad.to_str().unwrap();
    ok(&root, &["run", "--models", bad_dir]);
    land(
        &root,
        "landing-4.parquet",
        &[
            ("late-7", Some("cookie-a"), "2026-06-30 19:00:00"),
            ("late-8", Some("cookie-b"), "2026-06-30 19:01:00"),
        ],
    );
    let (success, log) = profiledb(&root, &["run", "--models", bad_dir]);
    assert!(!success, "{log}");
    assert!(
        log.contains("unique_key (event) is not unique") && log.contains("Late Landing"),
        "{log}"
    );
    let server = TestServer::start(&root).await;
    let kept = rows(
        &server,
        "SELECT count(*) FROM kinds WHERE event = 'Late Landing'",
    )
    .await;
    assert_eq!(kept, vec!["3".to_owned()], "the last good version stands");
    server.stop().await;
}

/// A model over tables and a view, merged by key: its keys follow the
/// tables' inserted and deleted rows (identity_map's changes, the
/// identifiers appended, the graph below the identity_links view).
const PROFILE_ACTIVITY: &str = "{{ config(materialized='incremental', unique_key='profile_id') }}\n\
     WITH links AS (SELECT profile_id, count(*) AS links FROM identity_links GROUP BY 1)\n\
     SELECT m.profile_id, count(DISTINCT m.id_value) AS identifiers, \
            count(DISTINCT i.row_key) AS source_rows, max(l.links) AS links\n\
     FROM identity_map m\n\
     JOIN identifiers i ON i.id_type = m.id_type AND i.id_value = m.id_value\n\
     LEFT JOIN links l ON l.profile_id = m.profile_id\n\
     GROUP BY m.profile_id\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_follow_the_changes_of_tables_and_views() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, models) = (tmp.path().join("root"), tmp.path().join("models"));
    crate::support::copy_default_models(&models);
    std::fs::write(models.join("profile_activity.sql"), PROFILE_ACTIVITY).unwrap();
    let dir = models.to_str().unwrap();
    ok(
        &root,
        &[
            "generate",
            "--people",
            "300",
            "--seed",
            "8",
            "--as-of",
            "2026-06-30",
        ],
    );
    ok(&root, &["run", "--models", dir]);

    // Two profiles, each with a cookie and an email: an identify call
    // carrying the first's cookie and the second's email merges them.
    let server = TestServer::start(&root).await;
    let pick = |n: usize| {
        format!(
            "SELECT a.profile_id, a.id_value, e.id_value FROM identity_map a \
             JOIN identity_map e ON e.profile_id = a.profile_id AND e.id_type = 'email' \
             WHERE a.id_type = 'anonymous_id' \
             AND a.profile_id NOT IN (SELECT profile_id FROM identity_map WHERE id_type = 'user_id') \
             ORDER BY a.profile_id, a.id_value, e.id_value LIMIT 1 OFFSET {n}"
        )
    };
    let first = text_rows(&server.client().await, &pick(0)).await;
    let mut second = Vec::new();
    for n in 1..50 {
        second = text_rows(&server.client().await, &pick(n)).await;
        if second[0].split('|').next() != first[0].split('|').next() {
            break;
        }
    }
    server.stop().await;
    let a: Vec<&str> = first[0].split('|').collect();
    let b: Vec<&str> = second[0].split('|').collect();
    assert_ne!(a[0], b[0], "two profiles");
    let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    write_parquet(
        &root.join("raw/events/merge.parquet"),
        vec![
            ("message_id", text("merge-1")),
            ("type", text("identify")),
            (
                "timestamp",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_782_000_000_000_000i64])
                        .with_timezone("UTC"),
                ),
            ),
            ("anonymous_id", text(a[1])),
            ("traits", text(&format!(r#"{{"email":"{}"}}"#, b[2]))),
        ],
    );
    let log = ok(&root, &["run", "--models", dir]);
    let l = line(&log, "profile_activity");
    assert!(l.contains("(incremental: +") && l.contains(" -"), "{l}");
    assert!(
        line(&log, "identity_map").contains("(incremental: +"),
        "{log}"
    );

    // One of the two ids is gone, merged into the other: its row too.
    let server = TestServer::start(&root).await;
    let c = server.client().await;
    let left = text_rows(
        &c,
        &format!(
            "SELECT count(*) FROM profile_activity WHERE profile_id IN ('{}', '{}')",
            a[0], b[0]
        ),
    )
    .await;
    assert_eq!(left, ["1"], "one profile row for the merged pair");
    let merged = rows(&server, "SELECT * FROM profile_activity").await;
    server.stop().await;

    // Row for row what a full refresh of the same data builds.
    let scratch = root.with_extension("full");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&root)
        .arg(&scratch)
        .status()
        .unwrap();
    assert!(status.success());
    ok(&scratch, &["run", "--models", dir, "--full-refresh"]);
    let full_server = TestServer::start(&scratch).await;
    let full = rows(&full_server, "SELECT * FROM profile_activity").await;
    full_server.stop().await;
    assert_eq!(merged.len(), full.len());
    assert_eq!(merged, full, "the merge differs from a full refresh");

    // A table rewritten whole cannot say what changed: rebuilt, and why.
    ok(
        &root,
        &[
            "run",
            "--models",
            dir,
            "--select",
            "identity_map",
            "--full-refresh",
        ],
    );
    let log = ok(
        &root,
        &["run", "--models", dir, "--select", "profile_activity"],
    );
    let l = line(&log, "profile_activity");
    assert!(
        l.contains("(rebuilt: ") && l.contains("identity_map"),
        "{l}"
    );
}
