//! Activation: segment members and their changes exported as files and
//! POSTed to webhooks — a local HTTP receiver in the test that fails and
//! recovers, and one that never answers well (dead letters) — through
//! `profiledb run`, read back through the wire.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{TestServer, copy_default_models, generated_root, profiledb, text_rows};

/// What a receiver got: (idempotency key, status it answered, body).
type Received = Arc<Mutex<Vec<(String, u16, serde_json::Value)>>>;

/// An HTTP receiver that answers `fail_status` to its first `failures`
/// requests (all of them when `failures` is None), then 200.
async fn receiver(failures: Option<usize>, fail_status: u16) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Received = Arc::default();
    let seen = Arc::clone(&got);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head, body_start) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..p]).to_string(), p + 4);
                    }
                };
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                while buf.len() < body_start + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body: serde_json::Value =
                    serde_json::from_slice(&buf[body_start..body_start + length])
                        .unwrap_or(serde_json::Value::Null);
                let status = {
                    let mut seen = seen.lock().unwrap();
                    let failing = failures.is_none_or(|f| seen.len() < f);
                    let status = if failing { fail_status } else { 200 };
                    seen.push((header("idempotency-key"), status, body));
                    status
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, got)
}

fn run(root: &Path, models: &Path) -> String {
    let (ok, log) = profiledb(root, &["run", "--models", models.to_str().unwrap()]);
    assert!(ok, "{log}");
    log
}

async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    text_rows(client, sql).await
}

/// Every (profile id, event) the successful deliveries carried.
fn delivered(got: &Received) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, status, _)| *status == 200)
        .flat_map(|(_, _, body)| {
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["profile_id"].as_str().unwrap().to_owned(),
                        e["event"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_reach_files_and_webhooks_at_least_once() {
    let data = generated_root(300, 31).await;
    let root = data.path();
    let tmp = tempfile::tempdir().unwrap();
    let models = copy_default_models(&tmp.path().join("models"));
    let (flaky_url, flaky) = receiver(Some(2), 500).await;
    let (down_url, down) = receiver(None, 503).await;
    std::fs::write(
        models.join("activations.yml"),
        format!(
            "activations:
  - segment: buyers
    export: {{format: parquet, path: exports/buyers}}
    webhook:
      url: {flaky_url}
      batch_size: 40
      max_attempts: 4
      retry_base_ms: 5
      headers: {{X-Token: \"${{PROFILEDB_TEST_TOKEN}}\"}}
  - name: buyers_csv
    segment: buyers
    export: {{format: csv, path: exports/buyers_csv}}
    webhook: {{url: {down_url}, batch_size: 1000, max_attempts: 2, retry_base_ms: 5}}
"
        ),
    )
    .unwrap();
    // Before the segment exists, the activations say so and wait.
    let log = run(root, &models);
    assert!(
        log.contains("FAIL  activation buyers") && log.contains("no segment buyers"),
        "{log}"
    );

    let server = TestServer::start(root).await;
    let (ok, _, err) = server.psql(&[
        "-c",
        "CREATE VIEW segments.buyers AS SELECT profile_id FROM profiles WHERE order_count > 0",
    ]);
    assert!(ok, "{err}");
    let client = server.client().await;
    let buyers: usize = rows(&client, "SELECT count(*) FROM segments.buyers").await[0]
        .parse()
        .unwrap();
    server.stop().await;

    // First delivery: every member entered.
    let log = run(root, &models);
    assert!(log.contains("ok    activation buyers"), "{log}");
    let batches = buyers.div_ceil(40);
    {
        let got = flaky.lock().unwrap();
        // Two failures, retried with the same key, then every batch once.
        assert_eq!(got.len(), batches + 2, "{batches}");
        assert_eq!(got[0].0, got[1].0);
        assert_eq!(got[1].0, got[2].0);
        assert_eq!((got[0].1, got[2].1), (500, 200));
        let keys: std::collections::BTreeSet<&String> = got.iter().map(|g| &g.0).collect();
        assert_eq!(keys.len(), batches);
        assert!(got[2].0.starts_with("buyers:0:"), "{}", got[2].0);
    }
    let first = delivered(&flaky);
    assert_eq!(first.len(), buyers);
    assert!(first.iter().all(|(_, e)| e == "entered"));

    // The receiver that never recovers: its batch is a dead letter.
    let server = TestServer::start(root).await;
    let client = server.client().await;
    assert_eq!(down.lock().unwrap().len(), 2);
    assert_eq!(
        rows(
            &client,
            "SELECT activation, segment, error, attempts, payload LIKE '%\"events\"%' \
             FROM activation_dead_letters"
        )
        .await,
        ["buyers_csv|buyers|HTTP 503|2|t"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT activation, members, changes, batches_delivered, batches_dead_lettered \
             FROM activation_runs WHERE error IS NULL ORDER BY activation"
        )
        .await,
        [
            format!("buyers|{buyers}|{buyers}|{batches}|0"),
            format!("buyers_csv|{buyers}|{buyers}|0|1"),
        ]
    );
    // The export: members, changes and a manifest, readable as files.
    let exports = root.join("exports/buyers");
    let folders: Vec<_> = std::fs::read_dir(&exports).unwrap().collect();
    assert_eq!(folders.len(), 1);
    let folder = folders[0].as_ref().unwrap().path();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["members"], buyers);
    let file = std::fs::File::open(folder.join("members.parquet")).unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap();
    assert_eq!(
        reader.metadata().file_metadata().num_rows() as usize,
        buyers
    );
    let columns: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(columns, ["profile_id", "since"]);

    // Narrower segment: the next delivery carries only the exits.
    let (ok, _, err) = server.psql(&[
        "-c",
        "CREATE OR REPLACE VIEW segments.buyers AS SELECT profile_id FROM profiles WHERE order_count > 1",
    ]);
    assert!(ok, "{err}");
    let now_buyers: usize = rows(&client, "SELECT count(*) FROM segments.buyers").await[0]
        .parse()
        .unwrap();
    server.stop().await;
    let before = flaky.lock().unwrap().len();
    run(root, &models);
    let all = delivered(&flaky);
    let exits: Vec<_> = all.iter().filter(|(_, e)| e == "exited").collect();
    assert_eq!(exits.len(), buyers - now_buyers);
    let new_keys: Vec<String> = flaky.lock().unwrap()[before..]
        .iter()
        .map(|g| g.0.clone())
        .collect();
    assert!(
        new_keys.iter().all(|k| !k.starts_with("buyers:0:")),
        "{new_keys:?}"
    );
    let csv_folders: Vec<_> = std::fs::read_dir(root.join("exports/buyers_csv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(csv_folders.len(), 2);
    let latest = csv_folders.iter().max().unwrap();
    let changes = std::fs::read_to_string(latest.join("changes.csv")).unwrap();
    assert!(changes.starts_with("profile_id,event,at"), "{changes}");
    assert_eq!(changes.lines().count() - 1, buyers - now_buyers);
    assert!(changes.lines().skip(1).all(|l| l.contains(",exited,")));

    // Nothing changed: nothing is sent.
    let before = flaky.lock().unwrap().len();
    run(root, &models);
    assert_eq!(flaky.lock().unwrap().len(), before);
}
