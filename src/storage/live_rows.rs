//! A table version's live rows, each with the data file and position it
//! sits at: what a writer that deletes some of them needs (see
//! [`super::deletes`]). Files are read directly with the Parquet reader,
//! their deleted rows skipped by row selection, several files at a time.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use futures::TryStreamExt;

use super::Storage;
use super::deletes::{self, DeletedRows};
use super::publish::TablePointer;
use crate::error::{Error, Result};

/// Rows of one data file, in file order.
#[derive(Debug)]
pub struct LiveBatch {
    /// Index into [`LiveRows::files`].
    pub file: usize,
    /// Each row's position in its data file.
    pub positions: Vec<u32>,
    pub batch: RecordBatch,
}

/// Every live row of a version.
#[derive(Debug, Default)]
pub struct LiveRows {
    /// The version's data files (relative to the storage root).
    pub files: Vec<String>,
    /// How many rows each data file has (deleted ones included).
    pub file_rows: Vec<u64>,
    pub batches: Vec<LiveBatch>,
}

impl LiveRows {
    pub async fn read(storage: &Storage, pointer: &TablePointer) -> Result<Self> {
        let deleted = Arc::new(deletes::load_all(storage, &pointer.deletes).await?);
        let schema = pointer.arrow_schema()?;
        let mut tasks = Vec::with_capacity(pointer.files.len());
        for (file, path) in pointer.files.iter().enumerate() {
            let (storage, path, deleted) = (storage.clone(), path.clone(), Arc::clone(&deleted));
            let schema = Arc::clone(&schema);
            tasks.push(tokio::spawn(async move {
                let rows = deleted.get(&path).map(|(_, d)| d);
                read_file(&storage, file, &path, rows, &schema).await
            }));
        }
        let mut out = Self {
            files: pointer.files.clone(),
            ..Self::default()
        };
        for task in tasks {
            let (file_rows, batches) = task.await.map_err(|e| Error::Metadata {
                path: pointer.name.clone(),
                message: format!("reading the table's files: {e}"),
            })??;
            out.file_rows.push(file_rows);
            out.batches.extend(batches);
        }
        Ok(out)
    }

    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.batch.num_rows()).sum()
    }
}

async fn read_file(
    storage: &Storage,
    file: usize,
    path: &str,
    deleted: Option<&DeletedRows>,
    schema: &datafusion::arrow::datatypes::SchemaRef,
) -> Result<(u64, Vec<LiveBatch>)> {
    let reader = storage.parquet_reader(path, 0).await?;
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let file_rows = builder.metadata().file_metadata().num_rows() as u64;
    let selection = deleted.map(|d| d.selection(file_rows));
    let mut positions = live_positions(selection.as_ref(), file_rows).into_iter();
    let mut builder = builder.with_batch_size(8192);
    if let Some(s) = selection {
        builder = builder.with_row_selection(s);
    }
    let batches: Vec<RecordBatch> = builder.build()?.try_collect().await?;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let batch =
            RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec()).map_err(|e| {
                Error::Metadata {
                    path: path.to_owned(),
                    message: format!("columns differ from the table's: {e}"),
                }
            })?;
        out.push(LiveBatch {
            file,
            positions: positions.by_ref().take(batch.num_rows()).collect(),
            batch,
        });
    }
    Ok((file_rows, out))
}

/// The positions a selection reads (all rows without one).
fn live_positions(selection: Option<&RowSelection>, file_rows: u64) -> Vec<u32> {
    let Some(selection) = selection else {
        return (0..file_rows as u32).collect();
    };
    let mut out = Vec::with_capacity(selection.row_count());
    let mut at = 0u32;
    for s in selection.iter() {
        if !s.skip {
            out.extend(at..at + s.row_count as u32);
        }
        at += s.row_count as u32;
    }
    out
}
