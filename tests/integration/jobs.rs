//! Scheduled jobs on a test clock: models run when their schedules fire,
//! a failing job keeps its last table, records its error and is retried
//! with backoff, and all of it is read through the wire (`system.jobs`,
//! `system.runs`, `system.models`, `CALL system.run()` from psql).

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::Int64Array;
use profiledb::engine::Engine;
use profiledb::jobs::Jobs;
use profiledb::jobs::clock::TestClock;
use profiledb::server::ServerOptions;
use tokio::sync::oneshot;

use crate::support::{TestServer, copy_default_models, generated_root, text_rows, write_parquet};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The raw source `switch` the `fragile` model divides by.
fn set_divisor(root: &Path, divisor: i64) {
    write_parquet(
        &root.join("raw/switch/switch.parquet"),
        vec![("divisor", Arc::new(Int64Array::from(vec![divisor])))],
    );
}

/// Lands one file of page events: (anonymous id, time).
fn land_pages(root: &Path, pages: &[(&str, &str)]) {
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
    let text = |f: &dyn Fn(usize) -> String| -> Arc<StringArray> {
        Arc::new(StringArray::from_iter_values((0..pages.len()).map(f)))
    };
    write_parquet(
        &root.join("raw/events/landed-pages.parquet"),
        vec![
            ("message_id", text(&|i| format!("landed-page-{i}"))),
            ("type", text(&|_| "page".to_owned())),
            (
                "timestamp",
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        pages.iter().map(|p| at(p.1).timestamp_micros()),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            ("anonymous_id", text(&|i| pages[i].0.to_owned())),
        ],
    );
}

async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    text_rows(client, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_jobs_run_retry_and_show_in_system_tables() {
    let data = generated_root(200, 11).await;
    let root = data.path();
    let tmp = tempfile::tempdir().unwrap();
    let models = copy_default_models(&tmp.path().join("models"));
    std::fs::write(
        models.join("visits.sql"),
        "{{ config(schedule='every 15 minutes', tags=['web']) }}\n\
         SELECT anonymous_id, count(*) AS visits FROM events WHERE type = 'page' GROUP BY 1\n",
    )
    .unwrap();
    std::fs::write(
        models.join("fragile.sql"),
        "{{ config(schedule='0 * * * *', retries=2) }}\nSELECT 100 / divisor AS x FROM switch\n",
    )
    .unwrap();
    set_divisor(root, 1);

    let clock = Arc::new(TestClock::new(at("2026-07-01T00:00:00Z")));
    let engine = Engine::open(root.to_str().unwrap()).await.unwrap();
    let jobs = Jobs::new(
        Arc::clone(&engine),
        Some(models.clone()),
        Arc::clone(&clock) as _,
    )
    .await
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let scheduler = tokio::spawn(Arc::clone(&jobs).run_schedule(async {
        let _ = stopped.await;
    }));
    let server = TestServer::serve_engine(engine, ServerOptions::default(), "127.0.0.1:0").await;
    jobs.settled().await;
    let client = server.client().await;

    // Nothing has run: the jobs wait for their times.
    assert_eq!(
        rows(
            &client,
            "SELECT model, schedule, state, next_run_at FROM system.jobs ORDER BY model"
        )
        .await,
        [
            "fragile|0 * * * *|scheduled|2026-07-01 01:00:00+00",
            "visits|every 15 minutes|scheduled|2026-07-01 00:15:00+00",
        ]
    );
    assert_eq!(
        rows(&client, "SELECT count(*) FROM system.runs").await,
        ["0"]
    );

    // An admin builds every model from psql.
    let (ok, out, err) = server.psql(&["-c", "CALL system.run()"]);
    assert!(ok, "{err}");
    assert!(out.contains("profiles") && out.contains("success"), "{out}");
    assert_eq!(
        rows(
            &client,
            "SELECT trigger, count(*), count(*) FILTER (WHERE status = 'success') \
             FROM system.runs GROUP BY 1"
        )
        .await,
        ["manual|16|16"]
    );
    assert_eq!(rows(&client, "SELECT x FROM fragile").await, ["100"]);

    // Segments on `visits`: refreshed by every run, scheduled ones too.
    let (ok, _, err) = server.psql(&[
        "-c",
        "CREATE VIEW segments.casual AS SELECT anonymous_id AS profile_id FROM visits WHERE visits < 3",
        "-c",
        "CREATE VIEW segments.regulars AS SELECT anonymous_id AS profile_id FROM visits WHERE visits >= 3",
    ]);
    assert!(ok, "{err}");

    // 00:15: `visits` runs on its schedule.
    clock.advance(chrono::Duration::minutes(15));
    jobs.settled().await;
    assert_eq!(
        rows(
            &client,
            "SELECT model, status, job, attempt FROM system.runs WHERE trigger = 'schedule'"
        )
        .await,
        ["visits|success|visits|0"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT next_run_at, last_status FROM system.jobs WHERE model = 'visits'"
        )
        .await,
        ["2026-07-01 00:30:00+00|success"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT count(*) = (SELECT count(*) FROM segments.casual), min(since) \
             FROM segment_membership WHERE segment = 'casual'"
        )
        .await,
        ["t|2026-07-01 00:15:00+00"]
    );

    // New raw events land: a casual visitor comes back three times, a new
    // one arrives. At 00:30 the schedule fires and the segments record it.
    let casual = rows(
        &client,
        "SELECT profile_id FROM segments.casual ORDER BY profile_id LIMIT 1",
    )
    .await
    .remove(0);
    land_pages(
        root,
        &[
            (casual.as_str(), "2026-07-01T00:20:00Z"),
            (casual.as_str(), "2026-07-01T00:21:00Z"),
            (casual.as_str(), "2026-07-01T00:22:00Z"),
            ("cookie-newcomer", "2026-07-01T00:25:00Z"),
        ],
    );
    clock.advance(chrono::Duration::minutes(15));
    jobs.settled().await;
    assert_eq!(
        rows(
            &client,
            &format!(
                "SELECT segment, profile_id, entered_at, exited_at FROM segment_history \
                 WHERE profile_id IN ('{casual}', 'cookie-newcomer') ORDER BY entered_at, segment, profile_id"
            )
        )
        .await,
        [
            format!("casual|{casual}|2026-07-01 00:15:00+00|2026-07-01 00:30:00+00"),
            "casual|cookie-newcomer|2026-07-01 00:30:00+00|∅".to_owned(),
            format!("regulars|{casual}|2026-07-01 00:30:00+00|∅"),
        ]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT segment, entered, exited FROM segment_stats \
             WHERE refreshed_at = '2026-07-01 00:30:00+00' ORDER BY segment"
        )
        .await,
        ["casual|1|1", "regulars|1|0"]
    );

    // 01:00: `fragile` fails. Its last good table stays, the error is
    // recorded, and it is retried after 30 s and 60 s; then it waits for
    // 02:00. (`visits`, due since 00:45, runs once, not twice.)
    set_divisor(root, 0);
    clock.set(at("2026-07-01T01:00:00Z"));
    jobs.settled().await;
    let failed = rows(
        &client,
        "SELECT status, error FROM system.runs WHERE model = 'fragile' AND trigger <> 'manual'",
    )
    .await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].starts_with("failed|") && failed[0].contains("Divide by zero"),
        "{failed:?}"
    );
    assert_eq!(rows(&client, "SELECT x FROM fragile").await, ["100"]);
    assert_eq!(
        rows(
            &client,
            "SELECT state, attempt, next_run_at FROM system.jobs WHERE model = 'fragile'"
        )
        .await,
        ["retrying|1|2026-07-01 01:00:30+00"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT count(*) FROM system.runs WHERE model = 'visits' AND trigger = 'schedule'"
        )
        .await,
        ["3"]
    );
    clock.advance(chrono::Duration::seconds(30));
    jobs.settled().await;
    assert_eq!(
        rows(
            &client,
            "SELECT state, attempt, next_run_at FROM system.jobs WHERE model = 'fragile'"
        )
        .await,
        ["retrying|2|2026-07-01 01:01:30+00"]
    );
    clock.advance(chrono::Duration::seconds(60));
    jobs.settled().await;
    assert_eq!(
        rows(
            &client,
            "SELECT state, attempt, next_run_at, last_status FROM system.jobs WHERE model = 'fragile'"
        )
        .await,
        ["scheduled|0|2026-07-01 02:00:00+00|failed"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT trigger, attempt, status FROM system.runs \
             WHERE model = 'fragile' AND trigger <> 'manual' ORDER BY started_at"
        )
        .await,
        ["schedule|0|failed", "retry|1|failed", "retry|2|failed"]
    );

    // Fixed upstream: the 02:00 run succeeds and publishes a new version.
    set_divisor(root, 4);
    clock.set(at("2026-07-01T02:00:00Z"));
    jobs.settled().await;
    assert_eq!(rows(&client, "SELECT x FROM fragile").await, ["25"]);
    assert_eq!(
        rows(
            &client,
            "SELECT materialized, schedule, depends_on, last_status, last_success_at, next_run_at \
             FROM system.models WHERE name = 'fragile'"
        )
        .await,
        ["table|0 * * * *|{}|success|2026-07-01 02:00:00+00|2026-07-01 03:00:00+00"]
    );
    let profiles = rows(
        &client,
        "SELECT materialized, schedule IS NULL, rows > 0, last_status, \
                array_has(depends_on, 'profile_traits') FROM system.models WHERE name = 'profiles'",
    )
    .await;
    assert_eq!(profiles, ["incremental|t|t|success|t"]);
    assert_eq!(
        rows(
            &client,
            "SELECT tags FROM system.models WHERE name = 'visits'"
        )
        .await,
        ["{web}"]
    );
    // The system schema is read-only and listed like any other.
    let e = client
        .simple_query("DELETE FROM system.runs")
        .await
        .unwrap_err();
    let message = e.as_db_error().map(|d| d.message().to_owned());
    assert!(
        message.as_deref().unwrap_or("").contains("system table"),
        "{e:?}"
    );
    let (ok, out, err) = server.psql(&["-c", "\\dt system.*"]);
    assert!(
        ok && out.contains("runs") && out.contains("jobs"),
        "{out}{err}"
    );

    let _ = stop.send(());
    scheduler.await.unwrap();
    server.stop().await;
}
