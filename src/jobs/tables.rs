//! The rows of `system.models`, `system.runs` and `system.jobs`, and of a
//! `CALL system.run(…)`'s answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::Job;
use super::history::RunRecord;
use crate::catalog::DEFAULT_SCHEMA;
use crate::engine::Engine;
use crate::error::Result;
use crate::models::dag::Node;
use crate::models::template::Materialized;

fn text() -> DataType {
    DataType::Utf8
}

fn time() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn schema(columns: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

pub fn models_schema() -> SchemaRef {
    schema(&[
        ("name", text()),
        ("materialized", text()),
        ("schedule", text()),
        ("tags", list()),
        ("depends_on", list()),
        ("path", text()),
        ("rows", DataType::Int64),
        ("bytes", DataType::Int64),
        ("version", text()),
        ("published_at", time()),
        ("freshness_seconds", DataType::Float64),
        ("last_run_at", time()),
        ("last_status", text()),
        ("last_error", text()),
        ("last_success_at", time()),
        ("next_run_at", time()),
    ])
}

pub fn runs_schema() -> SchemaRef {
    schema(&[
        ("run_id", text()),
        ("model", text()),
        ("trigger", text()),
        ("triggered_by", text()),
        ("job", text()),
        ("attempt", DataType::Int32),
        ("status", text()),
        ("mode", text()),
        ("started_at", time()),
        ("finished_at", time()),
        ("seconds", DataType::Float64),
        ("rows", DataType::Int64),
        ("new_rows", DataType::Int64),
        ("deleted_rows", DataType::Int64),
        ("bytes", DataType::Int64),
        ("error", text()),
        ("note", text()),
    ])
}

pub fn jobs_schema() -> SchemaRef {
    schema(&[
        ("model", text()),
        ("schedule", text()),
        ("state", text()),
        ("next_run_at", time()),
        ("last_run_at", time()),
        ("last_status", text()),
        ("attempt", DataType::Int32),
        ("retries", DataType::Int32),
    ])
}

fn texts<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn times(values: impl IntoIterator<Item = Option<DateTime<Utc>>>) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from_iter(
            values.into_iter().map(|t| t.map(|t| t.timestamp_micros())),
        )
        .with_timezone("UTC"),
    )
}

fn int64s(values: impl IntoIterator<Item = Option<u64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(
        values.into_iter().map(|v| v.map(|v| v as i64)),
    ))
}

fn int32s(values: impl IntoIterator<Item = Option<u32>>) -> ArrayRef {
    Arc::new(Int32Array::from_iter(
        values.into_iter().map(|v| v.map(|v| v as i32)),
    ))
}

fn floats(values: impl IntoIterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(values))
}

fn lists<'a>(values: impl IntoIterator<Item = Vec<&'a str>>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for items in values {
        for item in items {
            builder.values().append_value(item);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

pub fn runs(records: &[RunRecord]) -> Result<RecordBatch> {
    let rows: Vec<(&RunRecord, &super::history::ModelRun)> = records
        .iter()
        .flat_map(|r| r.models.iter().map(move |m| (r, m)))
        .collect();
    Ok(RecordBatch::try_new(
        runs_schema(),
        vec![
            texts(rows.iter().map(|(r, _)| Some(r.run_id.as_str()))),
            texts(rows.iter().map(|(_, m)| Some(m.model.as_str()))),
            texts(rows.iter().map(|(r, _)| Some(r.trigger.as_str()))),
            texts(rows.iter().map(|(r, _)| r.triggered_by.as_deref())),
            texts(rows.iter().map(|(r, _)| r.job.as_deref())),
            int32s(rows.iter().map(|(r, _)| Some(r.attempt))),
            texts(rows.iter().map(|(_, m)| Some(m.status.as_str()))),
            texts(rows.iter().map(|(_, m)| Some(m.mode.as_str()))),
            times(rows.iter().map(|(r, _)| Some(r.started_at))),
            times(rows.iter().map(|(r, _)| Some(r.finished_at))),
            floats(rows.iter().map(|(_, m)| Some(m.seconds))),
            int64s(rows.iter().map(|(_, m)| Some(m.rows))),
            int64s(rows.iter().map(|(_, m)| Some(m.new_rows))),
            int64s(rows.iter().map(|(_, m)| Some(m.deleted_rows))),
            int64s(rows.iter().map(|(_, m)| Some(m.bytes))),
            texts(rows.iter().map(|(_, m)| m.error.as_deref())),
            texts(rows.iter().map(|(_, m)| m.note.as_deref())),
        ],
    )?)
}

pub fn jobs(jobs: &[(String, Job)]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        jobs_schema(),
        vec![
            texts(jobs.iter().map(|(n, _)| Some(n.as_str()))),
            texts(jobs.iter().map(|(_, j)| Some(j.schedule.text()))),
            texts(jobs.iter().map(|(_, j)| {
                Some(if j.running {
                    "running"
                } else if j.retry_at.is_some() {
                    "retrying"
                } else {
                    "scheduled"
                })
            })),
            times(jobs.iter().map(|(_, j)| Some(j.due_at()))),
            times(jobs.iter().map(|(_, j)| j.last_run_at)),
            texts(jobs.iter().map(|(_, j)| j.last_status.as_deref())),
            int32s(jobs.iter().map(|(_, j)| Some(j.attempt))),
            int32s(jobs.iter().map(|(_, j)| Some(j.retries))),
        ],
    )?)
}

/// One model's row of `system.models`.
struct ModelRow<'a> {
    node: &'a Node,
    pointer: Option<crate::storage::publish::TablePointer>,
    published_at: Option<DateTime<Utc>>,
    last_run: Option<(&'a RunRecord, &'a super::history::ModelRun)>,
    last_success: Option<DateTime<Utc>>,
    next_run_at: Option<DateTime<Utc>>,
}

pub fn models(
    engine: &Engine,
    nodes: &BTreeMap<String, Node>,
    jobs: &BTreeMap<String, Job>,
    runs: &[RunRecord],
    now: DateTime<Utc>,
) -> Result<RecordBatch> {
    let snapshot = engine.catalog().snapshot();
    let rows: Vec<ModelRow> = nodes
        .iter()
        .map(|(name, node)| {
            let pointer = snapshot
                .relation(DEFAULT_SCHEMA, name)
                .and_then(|r| r.pointer.clone());
            let published_at = pointer
                .as_ref()
                .and_then(|p| DateTime::parse_from_rfc3339(&p.published_at).ok())
                .map(|t| t.with_timezone(&Utc));
            let mine = || {
                runs.iter()
                    .flat_map(|r| r.models.iter().map(move |m| (r, m)))
                    .filter(|(_, m)| m.model == *name)
            };
            ModelRow {
                node,
                pointer,
                published_at,
                last_run: mine().next_back(),
                last_success: mine()
                    .filter(|(_, m)| m.status == "success")
                    .map(|(r, _)| r.finished_at)
                    .next_back(),
                next_run_at: jobs.get(name).map(Job::due_at),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(
        models_schema(),
        vec![
            texts(rows.iter().map(|r| Some(r.node.model.name.as_str()))),
            texts(rows.iter().map(|r| {
                Some(if r.node.model.seed.is_some() {
                    "seed"
                } else {
                    match r.node.config.materialized {
                        Materialized::Table => "table",
                        Materialized::Incremental => "incremental",
                        Materialized::View => "view",
                    }
                })
            })),
            texts(
                rows.iter()
                    .map(|r| r.node.config.schedule.as_ref().map(|s| s.text())),
            ),
            lists(
                rows.iter()
                    .map(|r| r.node.config.tags.iter().map(String::as_str).collect()),
            ),
            lists(
                rows.iter()
                    .map(|r| r.node.depends_on.iter().map(String::as_str).collect()),
            ),
            texts(rows.iter().map(|r| Some(r.node.model.path.as_str()))),
            int64s(rows.iter().map(|r| r.pointer.as_ref().map(|p| p.rows))),
            int64s(rows.iter().map(|r| r.pointer.as_ref().map(|p| p.bytes))),
            texts(
                rows.iter()
                    .map(|r| r.pointer.as_ref().map(|p| p.version.as_str())),
            ),
            times(rows.iter().map(|r| r.published_at)),
            floats(rows.iter().map(|r| {
                r.published_at
                    .map(|t| (now - t).num_milliseconds() as f64 / 1000.0)
            })),
            times(
                rows.iter()
                    .map(|r| r.last_run.map(|(run, _)| run.started_at)),
            ),
            texts(
                rows.iter()
                    .map(|r| r.last_run.map(|(_, m)| m.status.as_str())),
            ),
            texts(
                rows.iter()
                    .map(|r| r.last_run.and_then(|(_, m)| m.error.as_deref())),
            ),
            times(rows.iter().map(|r| r.last_success)),
            times(rows.iter().map(|r| r.next_run_at)),
        ],
    )?)
}

pub fn run_result(record: &RunRecord) -> Result<RecordBatch> {
    let m = &record.models;
    Ok(RecordBatch::try_new(
        crate::catalog::system::run_result_schema(),
        vec![
            texts(m.iter().map(|_| Some(record.run_id.as_str()))),
            texts(m.iter().map(|m| Some(m.model.as_str()))),
            texts(m.iter().map(|m| Some(m.status.as_str()))),
            texts(m.iter().map(|m| Some(m.mode.as_str()))),
            int64s(m.iter().map(|m| Some(m.rows))),
            floats(m.iter().map(|m| Some(m.seconds))),
            texts(m.iter().map(|m| m.error.as_deref())),
        ],
    )?)
}
