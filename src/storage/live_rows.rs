//! A table version's live rows, each with the data file and position it
//! sits at: what a writer that deletes some of them needs (see
//! [`super::deletes`]). Files are read directly with the Parquet reader,
//! their deleted rows skipped by row selection, several files at a time.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection};
use datafusion::parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use datafusion::parquet::file::metadata::PageIndexPolicy;
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
    /// How many rows each data file has (deleted ones included; 0 for a
    /// file [`Self::read_positions`] picked nothing from, as it is not
    /// opened).
    pub file_rows: Vec<u64>,
    pub batches: Vec<LiveBatch>,
}

impl LiveRows {
    /// Every live row.
    pub async fn read(storage: &Storage, pointer: &TablePointer) -> Result<Self> {
        Self::read_live(storage, pointer, None).await
    }

    /// Every live row, of the columns at `columns` (indices into the
    /// table's columns) only.
    pub async fn read_columns(
        storage: &Storage,
        pointer: &TablePointer,
        columns: &[usize],
    ) -> Result<Self> {
        Self::read_live(storage, pointer, Some(columns)).await
    }

    async fn read_live(
        storage: &Storage,
        pointer: &TablePointer,
        columns: Option<&[usize]>,
    ) -> Result<Self> {
        let deleted = deletes::load_all(storage, &pointer.deletes).await?;
        let picks = pointer
            .files
            .iter()
            .map(|path| Some(Pick::Live(deleted.get(path).map(|(_, d)| d.clone()))))
            .collect();
        Self::read_picks(storage, pointer, picks, columns).await
    }

    /// The rows at `positions` (ascending, live) of data files, by index
    /// in `pointer.files`; the other files are not read.
    pub async fn read_positions(
        storage: &Storage,
        pointer: &TablePointer,
        positions: &BTreeMap<usize, Vec<u32>>,
    ) -> Result<Self> {
        Self::read_at(storage, pointer, positions, None).await
    }

    /// The rows at `positions` (as [`Self::read_positions`]), of the
    /// columns at `columns` only.
    pub async fn read_positions_of(
        storage: &Storage,
        pointer: &TablePointer,
        positions: &BTreeMap<usize, Vec<u32>>,
        columns: &[usize],
    ) -> Result<Self> {
        Self::read_at(storage, pointer, positions, Some(columns)).await
    }

    async fn read_at(
        storage: &Storage,
        pointer: &TablePointer,
        positions: &BTreeMap<usize, Vec<u32>>,
        columns: Option<&[usize]>,
    ) -> Result<Self> {
        let picks = (0..pointer.files.len())
            .map(|f| match positions.get(&f) {
                Some(p) if !p.is_empty() => Some(Pick::Rows(p.clone())),
                _ => None,
            })
            .collect();
        Self::read_picks(storage, pointer, picks, columns).await
    }

    /// Reads what `picks` says of each data file (None: not opened), of
    /// the columns at `columns` (all when None).
    async fn read_picks(
        storage: &Storage,
        pointer: &TablePointer,
        picks: Vec<Option<Pick>>,
        columns: Option<&[usize]>,
    ) -> Result<Self> {
        let mut schema = pointer.arrow_schema()?;
        if let Some(columns) = columns {
            schema = Arc::new(schema.project(columns)?);
        }
        let columns: Option<Arc<[usize]>> = columns.map(Arc::from);
        let mut tasks = Vec::with_capacity(pointer.files.len());
        for (file, (path, pick)) in pointer.files.iter().zip(picks).enumerate() {
            let (storage, path) = (storage.clone(), path.clone());
            let (schema, columns) = (Arc::clone(&schema), columns.clone());
            tasks.push(pick.map(|pick| {
                tokio::spawn(async move {
                    read_file(&storage, file, &path, pick, &schema, columns.as_deref()).await
                })
            }));
        }
        let mut out = Self {
            files: pointer.files.clone(),
            ..Self::default()
        };
        for task in tasks {
            let Some(task) = task else {
                out.file_rows.push(0);
                continue;
            };
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

/// Every row of one data file, deleted ones included (data files never
/// change, so what is derived from them holds for every version).
pub async fn read_whole_file(
    storage: &Storage,
    path: &str,
    schema: &datafusion::arrow::datatypes::SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let (_, batches) = read_file(storage, 0, path, Pick::Live(None), schema, None).await?;
    Ok(batches.into_iter().map(|b| b.batch).collect())
}

/// Which rows of a data file to read.
enum Pick {
    /// Those not deleted.
    Live(Option<DeletedRows>),
    /// These (ascending).
    Rows(Vec<u32>),
}

async fn read_file(
    storage: &Storage,
    file: usize,
    path: &str,
    pick: Pick,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    columns: Option<&[usize]>,
) -> Result<(u64, Vec<LiveBatch>)> {
    let reader = storage.parquet_reader(path, 0).await?;
    // The page index lets a selection skip pages it has no row in.
    let options = ArrowReaderOptions::new().with_page_index_policy(match pick {
        Pick::Rows(_) => PageIndexPolicy::Optional,
        _ => PageIndexPolicy::Skip,
    });
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, options).await?;
    let file_rows = builder.metadata().file_metadata().num_rows() as u64;
    let selection = match pick {
        Pick::Live(deleted) => deleted.map(|d| d.selection(file_rows)),
        Pick::Rows(rows) => Some(RowSelection::from_consecutive_ranges(
            rows.iter().map(|&r| r as usize..r as usize + 1),
            file_rows as usize,
        )),
    };
    let mut positions = live_positions(selection.as_ref(), file_rows).into_iter();
    let mut builder = builder.with_batch_size(8192);
    if let Some(columns) = columns {
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
        builder = builder.with_projection(mask);
    }
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
