//! Atomic publication of materialised tables.
//!
//! A table version is a folder of Parquet files written under a fresh name;
//! it becomes visible only when the table's small JSON pointer is replaced
//! (one atomic `put`). Readers resolve the pointer when they plan a query, so
//! they see the old version or the new one, never a partial one. A failing
//! writer never touches the pointer; its stray folder is removed at once, or
//! by the next successful publish, which keeps the current and the previous
//! version (for queries still reading it) and deletes the rest.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::object_store::buffered::BufWriter;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Storage, layout};
use crate::error::{Error, Result};

/// Rows per Parquet file before a new file is started.
const ROWS_PER_FILE: usize = 2_000_000;

/// A column as persisted in catalog files: the Arrow type in its display form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

pub fn columns_of(schema: &Schema) -> Vec<ColumnDef> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnDef {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

pub fn schema_of(columns: &[ColumnDef], path: &str) -> Result<SchemaRef> {
    let fields = columns
        .iter()
        .map(|c| {
            let data_type = DataType::from_str(&c.data_type).map_err(|e| Error::Metadata {
                path: path.to_owned(),
                message: format!("column {}: type {:?}: {e}", c.name, c.data_type),
            })?;
            Ok(Field::new(&c.name, data_type, c.nullable))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The pointer file of a table: which version is current, and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TablePointer {
    pub schema: String,
    pub name: String,
    pub version: String,
    /// Data files, relative to the storage root.
    pub files: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    pub published_at: String,
    pub columns: Vec<ColumnDef>,
    /// The model or statement that produced this version.
    #[serde(default)]
    pub produced_by: Option<String>,
}

impl TablePointer {
    pub fn arrow_schema(&self) -> Result<SchemaRef> {
        schema_of(
            &self.columns,
            &layout::table_pointer(&self.schema, &self.name),
        )
    }
}

/// Writes `stream` as a new version of `schema.name` and publishes it.
pub async fn publish_table(
    storage: &Storage,
    schema: &str,
    name: &str,
    stream: SendableRecordBatchStream,
    produced_by: Option<String>,
) -> Result<TablePointer> {
    let version = new_version_id();
    let dir = layout::table_version_dir(schema, name, &version);
    match write_files(storage, &dir, stream).await {
        Ok((files, rows, bytes, arrow_schema)) => {
            let pointer = TablePointer {
                schema: schema.to_owned(),
                name: name.to_owned(),
                version,
                files,
                rows,
                bytes,
                published_at: chrono::Utc::now().to_rfc3339(),
                columns: columns_of(&arrow_schema),
                produced_by,
            };
            let previous: Option<TablePointer> = storage
                .get_json(&layout::table_pointer(schema, name))
                .await
                .ok()
                .flatten();
            storage
                .put_json(&layout::table_pointer(schema, name), &pointer)
                .await?;
            prune_versions(storage, schema, name, &pointer, previous.as_ref()).await;
            Ok(pointer)
        }
        Err(e) => {
            if let Err(cleanup) = storage.delete_prefix(&dir).await {
                tracing::warn!(%dir, error = %cleanup, "could not remove an unpublished version");
            }
            Err(e)
        }
    }
}

/// Removes a table: the pointer first (so readers stop finding it), then data.
pub async fn drop_table(storage: &Storage, schema: &str, name: &str) -> Result<()> {
    storage.delete(&layout::table_pointer(schema, name)).await?;
    storage
        .delete_prefix(&format!("{}/", layout::table_dir(schema, name)))
        .await
}

async fn write_files(
    storage: &Storage,
    dir: &str,
    mut stream: SendableRecordBatchStream,
) -> Result<(Vec<String>, u64, u64, SchemaRef)> {
    let arrow_schema = stream.schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut files = Vec::new();
    let mut total_rows = 0u64;
    let mut total_bytes = 0u64;
    let mut writer: Option<(AsyncArrowWriter<BufWriter>, usize)> = None;

    loop {
        let next = stream.next().await.transpose()?;
        let finish_current = match (&writer, &next) {
            (Some((_, rows)), Some(_)) => *rows >= ROWS_PER_FILE,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if finish_current && let Some((w, _)) = writer.take() {
            w.close().await?;
        }
        // Always write at least one (possibly empty) file, so the version
        // carries its schema.
        let need_new = writer.is_none() && (next.is_some() || files.is_empty());
        if need_new {
            let rel = format!("{dir}/part-{:05}.parquet", files.len());
            let object = BufWriter::new(storage.store(), storage.path(&rel));
            let w =
                AsyncArrowWriter::try_new(object, Arc::clone(&arrow_schema), Some(props.clone()))?;
            writer = Some((w, 0));
            files.push(rel);
        }
        match next {
            Some(batch) => {
                if let Some((w, rows)) = writer.as_mut() {
                    w.write(&batch).await?;
                    *rows += batch.num_rows();
                }
                total_rows += batch.num_rows() as u64;
            }
            None => {
                if let Some((w, _)) = writer.take() {
                    w.close().await?;
                }
                break;
            }
        }
    }
    for (_, size) in storage.list(&format!("{dir}/")).await? {
        total_bytes += size;
    }
    Ok((files, total_rows, total_bytes, arrow_schema))
}

async fn prune_versions(
    storage: &Storage,
    schema: &str,
    name: &str,
    current: &TablePointer,
    previous: Option<&TablePointer>,
) {
    let table_dir = layout::table_dir(schema, name);
    let versions = match storage.list_dirs(&format!("{table_dir}/")).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(table = %name, error = %e, "could not list old versions");
            return;
        }
    };
    for version in versions {
        let keep = version == current.version || previous.is_some_and(|p| p.version == version);
        if !keep {
            let dir = format!("{table_dir}/{version}/");
            if let Err(e) = storage.delete_prefix(&dir).await {
                tracing::warn!(%dir, error = %e, "could not remove an old version");
            }
        }
    }
}

/// Version ids sort by creation time and never repeat.
fn new_version_id() -> String {
    let now = chrono::Utc::now();
    format!(
        "v{}-{:08x}",
        now.format("%Y%m%dT%H%M%S%.6fZ"),
        rand::random::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    fn stream_of(
        batches: Vec<Result<RecordBatch, datafusion::error::DataFusionError>>,
    ) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ))
    }

    fn batch(values: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    #[test]
    fn arrow_types_round_trip_through_their_display_form() {
        let schema = Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ),
            Field::new("d", DataType::Date32, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("n", DataType::Decimal128(18, 2), false),
        ]);
        let back = schema_of(&columns_of(&schema), "t").unwrap();
        assert_eq!(back.as_ref(), &schema);
    }

    #[tokio::test]
    async fn failed_write_keeps_previous_version() {
        let storage = Storage::open("memory://").unwrap();
        let first = publish_table(
            &storage,
            "public",
            "t",
            stream_of(vec![Ok(batch(vec![1, 2]))]),
            None,
        )
        .await
        .unwrap();
        assert_eq!(first.rows, 2);
        let failing = stream_of(vec![
            Ok(batch(vec![3])),
            Err(datafusion::error::DataFusionError::Execution("boom".into())),
        ]);
        assert!(
            publish_table(&storage, "public", "t", failing, None)
                .await
                .is_err()
        );
        let current: TablePointer = storage
            .get_json(&layout::table_pointer("public", "t"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.version, first.version);
        let dirs = storage.list_dirs("data/public/t/").await.unwrap();
        assert_eq!(dirs, vec![first.version.clone()]);
    }

    #[tokio::test]
    async fn empty_result_still_publishes_a_file() {
        let storage = Storage::open("memory://").unwrap();
        let p = publish_table(&storage, "public", "e", stream_of(vec![]), None)
            .await
            .unwrap();
        assert_eq!(p.rows, 0);
        assert_eq!(p.files.len(), 1);
    }
}
