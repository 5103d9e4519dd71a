//! The landing zone as upstream tools really write it: hive partitions,
//! files whose schemas differ, string and timestamp encodings DataFusion
//! reads differently, extra and missing columns, and files in the wrong
//! place.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, LargeStringArray, StringArray, StringViewArray, TimestampMillisecondArray,
    TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};

use crate::support::{TestServer, write_parquet as write};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_tolerate_schema_variations_and_hive_partitions() {
    let root = tempfile::tempdir().unwrap();
    let raw = root.path().join("raw");
    // Day 1: Utf8View ids, nanosecond timestamps without a zone, an extra column.
    write(
        &raw.join("events/dt=2026-01-01/part-0.parquet"),
        vec![
            (
                "message_id",
                Arc::new(StringViewArray::from(vec!["m1", "m2"])),
            ),
            (
                "type",
                Arc::new(StringArray::from(vec!["identify", "page"])),
            ),
            (
                "timestamp",
                Arc::new(TimestampNanosecondArray::from(vec![
                    1_767_225_600_000_000_000,
                    1_767_225_660_000_000_000,
                ])),
            ),
            (
                "anonymous_id",
                Arc::new(StringArray::from(vec![Some("c1"), Some("c1")])),
            ),
            (
                "user_id",
                Arc::new(StringArray::from(vec![Some("u1"), None])),
            ),
            ("channel", Arc::new(StringArray::from(vec!["web", "web"]))),
        ],
    );
    // Day 2: LargeUtf8, millisecond UTC timestamps, traits; no anonymous_id.
    write(
        &raw.join("events/dt=2026-01-02/part-0.parquet"),
        vec![
            ("message_id", Arc::new(LargeStringArray::from(vec!["m3"]))),
            ("type", Arc::new(StringArray::from(vec!["track"]))),
            (
                "timestamp",
                Arc::new(
                    TimestampMillisecondArray::from(vec![1_767_312_000_000]).with_timezone("UTC"),
                ),
            ),
            ("user_id", Arc::new(StringArray::from(vec!["u1"]))),
            (
                "traits",
                Arc::new(StringArray::from(vec![r#"{"email":"U1@X.COM"}"#])),
            ),
        ],
    );
    // A file where no partition folder belongs: the source is refused, the
    // others are not.
    write(
        &raw.join("orders/exports/orders.parquet"),
        vec![(
            "order_id",
            Arc::new(StringArray::from(vec!["o1"])) as ArrayRef,
        )],
    );
    // A source no model declares: its schema comes from its files.
    write(
        &raw.join("newsletter/signups.parquet"),
        vec![(
            "email",
            Arc::new(StringArray::from(vec!["a@b.co", "c@d.co"])) as ArrayRef,
        )],
    );

    let server = TestServer::start(root.path()).await;
    let c = server.client().await;
    let row = c
        .query_one(
            "SELECT count(*), count(anonymous_id), count(traits), count(channel), min(dt), max(dt), \
             min(\"timestamp\") FROM events",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    assert_eq!(row.get::<_, i64>(1), 2, "missing columns read as NULL");
    assert_eq!(row.get::<_, i64>(2), 1);
    assert_eq!(row.get::<_, i64>(3), 2, "extra columns are kept");
    assert_eq!(row.get::<_, String>(4), "2026-01-01");
    assert_eq!(row.get::<_, String>(5), "2026-01-02");
    let first: chrono::DateTime<chrono::Utc> = row.get(6);
    assert_eq!(first.to_rfc3339(), "2026-01-01T00:00:00+00:00");

    let types: Vec<(String, String)> = c
        .query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relname = 'events' ORDER BY a.attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        types.contains(&("timestamp".into(), "timestamp with time zone".into())),
        "{types:?}"
    );
    assert!(
        types.contains(&("message_id".into(), "text".into())),
        "{types:?}"
    );

    let err = c.query("SELECT * FROM orders", &[]).await.unwrap_err();
    let message = err.as_db_error().unwrap().message().to_owned();
    assert!(
        message.contains("raw/orders/exports/orders.parquet"),
        "{message}"
    );

    let n: i64 = c
        .query_one("SELECT count(*) FROM newsletter", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let _ = DataType::Timestamp(TimeUnit::Microsecond, None);
    server.stop().await;
}
