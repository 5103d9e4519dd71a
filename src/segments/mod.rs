//! Segments: any view in schema `segments` is a segment, a set of
//! profiles. [`refresh`] snapshots and diffs their membership at the end of
//! every run of models, so who entered and who exited, and when, is
//! queryable in SQL; [`activation`] then sends the changes on (files,
//! webhooks).

pub mod activation;
pub mod refresh;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use crate::catalog::DEFAULT_SCHEMA;
use crate::engine::Engine;
use crate::error::Result;
use crate::storage::publish::{self, VersionMeta};

/// Appends rows to a table of `public` (created on first use).
async fn append(engine: &Arc<Engine>, table: &str, batch: RecordBatch) -> Result<()> {
    let current = engine
        .catalog()
        .snapshot()
        .relation(DEFAULT_SCHEMA, table)
        .and_then(|r| r.pointer.clone());
    if current.is_some() && batch.num_rows() == 0 {
        return Ok(());
    }
    let stream = Box::pin(RecordBatchStreamAdapter::new(
        batch.schema(),
        futures::stream::iter([Ok(batch)]),
    ));
    publish::publish_version(
        engine.storage(),
        DEFAULT_SCHEMA,
        table,
        stream,
        VersionMeta {
            produced_by: Some(format!("segments ({table})")),
            append_to: current,
            ..VersionMeta::default()
        },
    )
    .await?;
    engine.catalog().refresh().await
}
