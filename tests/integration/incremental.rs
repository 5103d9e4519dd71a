//! Incremental runs through the CLI: after new raw files land, `profiledb
//! run` appends only their identifiers and resolves only the components
//! they reach. The tables must equal those of `profiledb run
//! --full-refresh` from the same starting point, row for row, and group
//! identifiers exactly as a run over all files from scratch does.

use std::path::Path;
use std::process::Command;

use crate::support::TestServer;

fn profiledb(root: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_profiledb"))
        // The resolver logs, at debug level, what an incremental run read.
        .env(
            "PROFILEDB_LOG",
            "profiledb::udf=debug,profiledb::models::index_scan=debug,profiledb::models::merge=debug",
        )
        .arg("--data")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "profiledb {args:?} failed:\n{stderr}");
    stderr
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Moves the raw files of `from` into `root` (a landing).
fn land(from: &Path, root: &Path, sources: &[&str]) {
    for source in sources {
        let dir = from.join("raw").join(source);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let to = root.join("raw").join(source);
            std::fs::create_dir_all(&to).unwrap();
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Every row of a query as text, sorted.
async fn rows(server: &TestServer, sql: &str) -> Vec<String> {
    let mut out = crate::support::text_rows(&server.client().await, sql).await;
    out.sort();
    out
}

/// The tables an incremental run must reproduce exactly. A redirect made
/// by this run is stamped with the run's time, so that column is left out
/// for redirect rows.
const EXACT: &[(&str, &str)] = &[
    ("identifiers", "SELECT * FROM identifiers"),
    (
        "identity_graph",
        "SELECT profile_id, id_type, id_value, status, reason, rule, linked_type, linked_value, \
         source, row_key, component_id, \
         CASE WHEN status = 'redirect' THEN NULL ELSE first_seen_at END, \
         CASE WHEN status = 'redirect' THEN NULL ELSE last_seen_at END FROM identity_graph",
    ),
    ("identity_map", "SELECT * FROM identity_map"),
    ("identity_rejections", "SELECT * FROM identity_rejections"),
    ("identity_links", "SELECT * FROM identity_links"),
    (
        "profile_redirects",
        "SELECT old_profile_id, new_profile_id, reason FROM profile_redirects",
    ),
    ("order_rows", "SELECT * FROM order_rows"),
    ("orders_unified", "SELECT * FROM orders_unified"),
    ("profile_traits", "SELECT * FROM profile_traits"),
    ("profile_scores", "SELECT * FROM profile_scores"),
    ("profiles", "SELECT * FROM profiles"),
];

/// Lands `batch` in `root` twice — once to run incrementally, once in a
/// copy to run with `--full-refresh` — and compares the two.
async fn land_and_compare(root: &Path, batch: &Path, sources: &[&str], step: &str) -> String {
    let full = tempfile::tempdir().unwrap();
    let full_root = full.path().join("root");
    copy_dir(root, &full_root);
    land(batch, root, sources);
    land(batch, &full_root, sources);
    let log = profiledb(root, &["run"]);
    profiledb(&full_root, &["run", "--full-refresh"]);
    let (a, b) = (
        TestServer::start(root).await,
        TestServer::start(&full_root).await,
    );
    // The resolver read the new occurrences and its touched components.
    assert!(
        log.contains("resolve_identities incremental scope"),
        "{log}"
    );
    // ... finding the earlier rows in scope through the occurrence index.
    assert!(
        log.contains("earlier occurrences in scope read by index"),
        "{log}"
    );
    assert!(!log.contains("scanning them"), "{log}");
    // ... and published its result as a delta: the rows of the touched
    // components deleted from the previous version's files, their new
    // rows added (or, past a quarter of deleted rows, compacted).
    let graph = log
        .lines()
        .find(|l| l.contains(" identity_graph "))
        .unwrap_or_else(|| panic!("no identity_graph line:\n{log}"));
    assert!(graph.contains("(incremental: +"), "{graph}");
    assert!(log.contains("resolve_identities delta"), "{log}");
    // identity_map follows the graph's changes: a merge of the rows the
    // graph inserted and deleted, not a rebuild.
    let map = log
        .lines()
        .find(|l| l.contains(" identity_map "))
        .unwrap_or_else(|| panic!("no identity_map line:\n{log}"));
    // (A compacted graph is rewritten whole: then the map is rebuilt.)
    if !graph.contains("compacted") {
        assert!(map.contains("(incremental: +"), "{map}");
    }
    // The order rows of the new files are appended; orders and profile
    // traits merge the keys the changes below them reach (new order rows,
    // identifiers, the map's changes), the RFM scores of `profile_scores` are
    // ranked over all of them again, and `profiles` merges the changed ones. (When the map was rebuilt, its changes
    // cannot be told: orders and traits are rebuilt too, and say why.)
    let followed = map.contains("(incremental: +");
    for model in ["order_rows", "orders_unified", "profile_traits"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!(" {model} ")))
            .unwrap_or_else(|| panic!("no {model} line:\n{log}"));
        let merged = line.contains("(incremental: +") || line.contains("(unchanged)");
        if followed || model == "order_rows" {
            assert!(merged, "{line}");
        } else {
            assert!(merged || line.contains("(rebuilt: "), "{line}");
        }
    }
    // The previous graph was read through its index: only the rows of the
    // touched components (and redirects, and merged rejections).
    assert!(log.contains("previous rows in scope read"), "{log}");
    for (table, sql) in EXACT {
        let (x, y) = (rows(&a, sql).await, rows(&b, sql).await);
        assert!(!x.is_empty(), "{step}: {table} is empty");
        let only_inc: Vec<&String> = x.iter().filter(|r| !y.contains(r)).take(3).collect();
        let only_full: Vec<&String> = y.iter().filter(|r| !x.contains(r)).take(3).collect();
        assert!(
            x == y,
            "{step}: {table} differs between the incremental run ({} rows) and --full-refresh ({} rows)\n\
             only incremental: {only_inc:#?}\nonly full: {only_full:#?}",
            x.len(),
            y.len()
        );
    }
    a.stop().await;
    b.stop().await;
    log
}

/// A landing of hand-made traps: a re-delivered message id carrying a new
/// cookie and email (the row group reappears in a new file), a junk cookie
/// beside a known email, and a second user id for a known cookie (a limit).
fn traps(dir: &Path, known: &[String]) {
    use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;
    let (message, cookie, email) = (&known[0], &known[1], &known[2]);
    // message id, type, cookie, user id, email
    type Row<'a> = (String, &'a str, String, Option<String>, String);
    let rows: Vec<Row> = vec![
        (
            message.clone(),
            "identify",
            "cookie-redelivered".into(),
            None,
            "redelivered@example.com".into(),
        ),
        (
            "trap-2".into(),
            "identify",
            "undefined".into(),
            None,
            email.clone(),
        ),
        (
            "trap-3".into(),
            "identify",
            cookie.clone(),
            Some("usr_second_login".into()),
            "second@example.com".into(),
        ),
    ];
    let text = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    crate::support::write_parquet(
        &dir.join("raw/events/traps.parquet"),
        vec![
            ("message_id", text(&|r| Some(r.0.clone()))),
            ("type", text(&|r| Some(r.1.to_owned()))),
            (
                "timestamp",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_790_000_000_000_000i64; rows.len()])
                        .with_timezone("UTC"),
                ),
            ),
            ("anonymous_id", text(&|r| Some(r.2.clone()))),
            ("user_id", text(&|r| r.3.clone())),
            (
                "traits",
                text(&|r| Some(format!(r#"{{"email":"{}"}}"#, r.4))),
            ),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_equal_a_full_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, second, third, fourth) = (
        tmp.path().join("root"),
        tmp.path().join("second"),
        tmp.path().join("third"),
        tmp.path().join("fourth"),
    );
    profiledb(&root, &["generate", "--people", "2000", "--seed", "42"]);
    profiledb(&second, &["generate", "--people", "2000", "--seed", "43"]);
    profiledb(&third, &["generate", "--people", "2000", "--seed", "44"]);
    profiledb(&root, &["run"]);

    // Landings 2 and 3: more exports of events and CRM contacts, whose
    // people overlap the first (merges, shared identifiers, redirects, and
    // message ids reused by other people's events: row groups that span
    // files, dated by their earliest row).
    for (batch, step) in [(&second, "landing 2"), (&third, "landing 3")] {
        let log = land_and_compare(&root, batch, &["events", "crm_contacts"], step).await;
        assert!(log.contains("(incremental: +"), "{log}");
        // A landing as large as the history touches most components: past
        // a quarter of deleted rows the graph is compacted (rewritten).
        if step == "landing 2" {
            let graph = log
                .lines()
                .find(|l| l.contains(" identity_graph "))
                .unwrap();
            assert!(graph.contains("compacted"), "{graph}");
        }
    }
    // Nothing new: the graph's version stands.
    let log = profiledb(&root, &["run"]);
    let graph = log
        .lines()
        .find(|l| l.contains(" identity_graph "))
        .unwrap();
    assert!(graph.contains("(unchanged)"), "{graph}");

    // Landing 4: traps built from rows of the first landing.
    let server = TestServer::start(&root).await;
    let known = rows(
        &server,
        "SELECT e.message_id || '|' || e.anonymous_id || '|' || m.id_value \
         FROM events e JOIN identity_map a ON a.id_type = 'anonymous_id' AND a.id_value = e.anonymous_id \
         JOIN identity_map m ON m.profile_id = a.profile_id AND m.id_type = 'email' \
         WHERE e.anonymous_id IS NOT NULL ORDER BY 1 LIMIT 1",
    )
    .await;
    server.stop().await;
    let known: Vec<String> = known[0].split('|').map(str::to_owned).collect();
    traps(&fourth, &known);
    let log = land_and_compare(&root, &fourth, &["events"], "landing 4").await;
    // A small landing leaves the graph's earlier files in place, less the
    // rows of the components it touched: the models after it read the
    // graph through its deleted rows (and matched the full rebuild).
    let graph = log
        .lines()
        .find(|l| l.contains(" identity_graph "))
        .unwrap();
    assert!(
        graph.contains(" -") && !graph.contains("compacted"),
        "{graph}"
    );
    let pointer =
        std::fs::read_to_string(root.join("catalog/tables/public/identity_graph.json")).unwrap();
    assert!(pointer.contains("\"deletes\""), "{pointer}");
    // The merges below it read the map's rows of the touched profiles
    // through its declared `profile_id` index, not by scanning the map.
    assert!(
        log.lines().any(|l| l.contains("index scan: rows picked")
            && l.contains("table=\"identity_map\"")
            && l.contains("through_index=true")),
        "{log}"
    );
    // The map's merge found the rows it replaces through its key's index.
    assert!(
        log.lines().any(
            |l| l.contains("replaced rows picked through the key's index")
                && l.contains("table=identity_map ")
        ),
        "{log}"
    );
    // The scores, ranked over every buyer again, are published as the rows
    // that changed (or kept), and profiles merge those.
    for (model, published) in [
        ("profile_scores", "(rebuilt, changed rows: +"),
        ("profiles", "(incremental: +"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!(" {model} ")))
            .unwrap_or_else(|| panic!("no {model} line:\n{log}"));
        assert!(
            line.contains(published) || line.contains("(unchanged)"),
            "{line}"
        );
    }
    let indexes = std::fs::read_dir(root.join("state/column_index/identity_map"))
        .unwrap()
        .count();
    assert_eq!(indexes, 2, "identity_map declares two indexes");

    // From scratch over all files: the same identifiers grouped the same
    // way, the same rejections and links (profile ids may differ: an
    // incremental history keeps older ids).
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    copy_dir(&root.join("raw"), &scratch.join("raw"));
    profiledb(&scratch, &["run"]);
    let (a, b) = (
        TestServer::start(&root).await,
        TestServer::start(&scratch).await,
    );
    let grouping = "SELECT m.id_type, m.id_value, r.id_type, r.id_value FROM identity_map m \
                    JOIN (SELECT profile_id, min(id_type || ':' || id_value) AS rep FROM identity_map GROUP BY profile_id) p \
                      ON p.profile_id = m.profile_id \
                    JOIN identity_map r ON r.profile_id = m.profile_id AND r.id_type || ':' || r.id_value = p.rep";
    assert_eq!(rows(&a, grouping).await, rows(&b, grouping).await);
    let decisions = "SELECT id_type, id_value, status, reason, rule, linked_type, linked_value, \
                     source, row_key, component_id, first_seen_at, last_seen_at \
                     FROM identity_graph WHERE status <> 'redirect'";
    assert_eq!(rows(&a, decisions).await, rows(&b, decisions).await);
    a.stop().await;
    b.stop().await;
}
