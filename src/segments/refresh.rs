//! Segment refreshes: every run of models (`profiledb run`, a scheduled
//! job, `CALL system.run()`) ends by evaluating each view of schema
//! `segments` and recording who entered and who exited since the last
//! refresh.
//!
//! One table is the record: `segment_events(segment, profile_id, event,
//! at)`, appended to at each refresh with an `entered` or `exited` row per
//! change. Because it is written in one atomic publish, a refresh either
//! happened or did not; the views over it cannot disagree with each other:
//!
//! - `segment_membership(segment, profile_id, since)`: the current members
//!   (a profile's last event is `entered`);
//! - `segment_history(segment, profile_id, entered_at, exited_at)`: each
//!   stay in a segment (`exited_at` NULL while it lasts);
//! - `segment_overlap(segment_a, segment_b, members_a, members_b,
//!   both_members, jaccard)`: how current memberships overlap.
//!
//! `segment_stats(segment, refreshed_at, members, entered, exited)` gets a
//! row per segment per refresh (size over time); it is appended after the
//! events, so a crash between the two loses a stats row, never a change.
//!
//! A segment's view must have a `profile_id` column; NULLs are ignored and
//! duplicates count once. A segment that fails to evaluate keeps its
//! members (no events) and the refresh reports its error. A dropped
//! segment's members all exit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::append;
use crate::catalog::{DEFAULT_SCHEMA, RelationKind, SEGMENTS_SCHEMA};
use crate::engine::Engine;
use crate::error::Result;

pub const EVENTS: &str = "segment_events";
pub const STATS: &str = "segment_stats";

/// The views over [`EVENTS`], created when missing.
const VIEWS: &[(&str, &str)] = &[
    (
        "segment_membership",
        "SELECT segment, profile_id, at AS since FROM ( \
           SELECT segment, profile_id, event, at, \
                  row_number() OVER (PARTITION BY segment, profile_id ORDER BY at DESC) AS latest \
           FROM public.segment_events) AS e \
         WHERE latest = 1 AND event = 'entered'",
    ),
    (
        "segment_history",
        "SELECT segment, profile_id, at AS entered_at, exited_at FROM ( \
           SELECT segment, profile_id, event, at, \
                  lead(at) OVER (PARTITION BY segment, profile_id ORDER BY at) AS exited_at \
           FROM public.segment_events) AS e \
         WHERE event = 'entered'",
    ),
    (
        "segment_overlap",
        "WITH sizes AS (SELECT segment, count(*) AS members FROM public.segment_membership GROUP BY segment) \
         SELECT a.segment AS segment_a, b.segment AS segment_b, \
                sa.members AS members_a, sb.members AS members_b, count(*) AS both_members, \
                CAST(count(*) AS DOUBLE PRECISION) / (sa.members + sb.members - count(*)) AS jaccard \
         FROM public.segment_membership a \
         JOIN public.segment_membership b ON a.profile_id = b.profile_id AND a.segment <> b.segment \
         JOIN sizes sa ON sa.segment = a.segment \
         JOIN sizes sb ON sb.segment = b.segment \
         GROUP BY a.segment, b.segment, sa.members, sb.members",
    ),
];

/// One segment's refresh.
#[derive(Debug, Clone)]
pub struct SegmentRefresh {
    pub segment: String,
    pub members: u64,
    pub entered: u64,
    pub exited: u64,
    /// Why the segment could not be evaluated (its members stand).
    pub error: Option<String>,
}

fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("segment", DataType::Utf8, false),
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

fn stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("segment", DataType::Utf8, false),
        Field::new(
            "refreshed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("members", DataType::Int64, false),
        Field::new("entered", DataType::Int64, false),
        Field::new("exited", DataType::Int64, false),
    ]))
}

/// Refreshes every segment as of `at`.
pub async fn refresh(engine: &Arc<Engine>, at: DateTime<Utc>) -> Result<Vec<SegmentRefresh>> {
    let catalog = engine.catalog();
    catalog.refresh().await?;
    let snapshot = catalog.snapshot();
    let segments: Vec<String> = snapshot
        .schemas
        .get(SEGMENTS_SCHEMA)
        .map(|s| {
            s.values()
                .filter(|r| r.kind == RelationKind::View)
                .map(|r| r.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let has_events = snapshot.relation(DEFAULT_SCHEMA, EVENTS).is_some();
    if segments.is_empty() && !has_events {
        return Ok(Vec::new());
    }
    let mut previous: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if has_events && snapshot.relation(DEFAULT_SCHEMA, VIEWS[0].0).is_some() {
        for batch in engine
            .query("SELECT segment, profile_id FROM public.segment_membership")
            .await?
        {
            let (s, p) = (
                batch.column(0).as_string::<i32>(),
                batch.column(1).as_string::<i32>(),
            );
            for i in 0..batch.num_rows() {
                previous
                    .entry(s.value(i).to_owned())
                    .or_default()
                    .insert(p.value(i).to_owned());
            }
        }
    }
    let mut events: Vec<(String, String, &'static str)> = Vec::new();
    let mut out = Vec::new();
    for segment in &segments {
        let before = previous.remove(segment).unwrap_or_default();
        let sql = format!(
            "SELECT DISTINCT CAST(profile_id AS VARCHAR) FROM \"{SEGMENTS_SCHEMA}\".\"{}\" \
             WHERE profile_id IS NOT NULL",
            segment.replace('"', "\"\"")
        );
        let now = match engine.query(&sql).await {
            Ok(batches) => members(&batches),
            Err(e) => {
                out.push(SegmentRefresh {
                    segment: segment.clone(),
                    members: before.len() as u64,
                    entered: 0,
                    exited: 0,
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        let entered: Vec<&String> = now.difference(&before).collect();
        let exited: Vec<&String> = before.difference(&now).collect();
        out.push(SegmentRefresh {
            segment: segment.clone(),
            members: now.len() as u64,
            entered: entered.len() as u64,
            exited: exited.len() as u64,
            error: None,
        });
        events.extend(
            entered
                .into_iter()
                .map(|p| (segment.clone(), p.clone(), "entered")),
        );
        events.extend(
            exited
                .into_iter()
                .map(|p| (segment.clone(), p.clone(), "exited")),
        );
    }
    // Dropped segments: their members exit.
    for (segment, before) in previous {
        out.push(SegmentRefresh {
            segment: segment.clone(),
            members: 0,
            entered: 0,
            exited: before.len() as u64,
            error: None,
        });
        events.extend(before.into_iter().map(|p| (segment.clone(), p, "exited")));
    }
    let micros = at.timestamp_micros();
    let time = |n: usize| -> ArrayRef {
        Arc::new(
            datafusion::arrow::array::TimestampMicrosecondArray::from(vec![micros; n])
                .with_timezone("UTC"),
        )
    };
    let batch = RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| &e.0))),
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| &e.1))),
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| e.2))),
            time(events.len()),
        ],
    )?;
    append(engine, EVENTS, batch).await?;
    let stats = RecordBatch::try_new(
        stats_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                out.iter().map(|r| &r.segment),
            )),
            time(out.len()),
            Arc::new(Int64Array::from_iter_values(
                out.iter().map(|r| r.members as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                out.iter().map(|r| r.entered as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                out.iter().map(|r| r.exited as i64),
            )),
        ],
    )?;
    append(engine, STATS, stats).await?;
    let snapshot = catalog.snapshot();
    for (name, sql) in VIEWS {
        if snapshot.relation(DEFAULT_SCHEMA, name).is_none() {
            engine
                .query(&format!(
                    "CREATE OR REPLACE VIEW \"{DEFAULT_SCHEMA}\".\"{name}\" AS {sql}"
                ))
                .await?;
        }
    }
    Ok(out)
}

/// The distinct profile ids of a segment's rows.
fn members(batches: &[RecordBatch]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for batch in batches {
        let column = batch.column(0);
        let Some(text) = column.as_string_opt::<i32>() else {
            let cast = datafusion::arrow::compute::cast(column, &DataType::Utf8);
            if let Ok(cast) = cast {
                out.extend(cast.as_string::<i32>().iter().flatten().map(str::to_owned));
            }
            continue;
        };
        out.extend(text.iter().flatten().map(str::to_owned));
    }
    out
}
