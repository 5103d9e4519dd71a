//! Rows read through a column index, shared by the scans of one build that
//! pick the same rows of a table. A model often reads a table several
//! times by the same keys — `profile_traits` reads the identity map five
//! times for the profiles a merge recomputes, `orders_unified` reads its
//! order rows by two indexes that pick the same rows — and a read of a few
//! rows spread over a whole table decodes every page they sit in, so the
//! pages are decoded once: the first scan reads the picked rows of every
//! column any scan of the table projects (the scans register theirs when
//! planned), the others take them from here.
//!
//! Rows are read with the Parquet reader directly, in file order, through
//! the same row selection (picked rows less deleted ones) the planned scan
//! would have used; each scan projects and casts them to its own schema.
//! The filter or join above the scan still compares the values.
//!
//! The index lookups are shared the same way: scans by the same keys
//! through the same index (the identity map's five, by profile) scan the
//! index once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection, RowSelector};
use datafusion::parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

use super::column_index;
use crate::identity::hash_filter::HashFilter;
use crate::storage::Storage;

/// Files read at once.
const PARALLEL: usize = 2;

/// The rows to read: each file (relative path, in scan order) and its
/// selection.
pub type Picks = Vec<(String, Vec<RowSelector>)>;

type Read = Arc<OnceCell<Arc<Vec<RecordBatch>>>>;

/// What a read is of: the rows, and the columns.
type ReadKey = (Picks, Vec<String>);

/// What an index lookup matched: each file's row count and its matching
/// rows (see [`column_index::matching`]).
pub type Matched = Arc<Vec<(usize, Vec<u32>)>>;

/// What a lookup is: the index's columns, the files, the keys' hashes
/// (sorted, distinct).
type LookupKey = (Vec<String>, Vec<String>, Vec<u64>);

/// One table's reads through its indexes, in one build.
#[derive(Debug, Default)]
pub struct PickedReads {
    /// Every column a scan of the table projects, by name.
    columns: Mutex<BTreeSet<String>>,
    reads: Mutex<Vec<(ReadKey, Read)>>,
    lookups: Mutex<Vec<(LookupKey, Arc<OnceCell<Matched>>)>>,
}

impl PickedReads {
    /// A scan of the table projects these columns.
    pub fn register(&self, schema: &SchemaRef) {
        let mut columns = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        columns.extend(schema.fields().iter().map(|f| f.name().clone()));
    }

    /// The rows of `files` (of `table`) whose hash by the index on
    /// `columns` is one of `keys` (sorted, distinct), looked up once for
    /// every scan of this build that asks the same.
    pub async fn matching(
        &self,
        storage: &Storage,
        table: &str,
        columns: &[String],
        files: &[String],
        keys: Vec<u64>,
    ) -> Result<Matched> {
        let key: LookupKey = (columns.to_vec(), files.to_vec(), keys);
        let lookup = {
            let mut lookups = self.lookups.lock().unwrap_or_else(|e| e.into_inner());
            match lookups.iter().find(|(k, _)| *k == key) {
                Some((_, lookup)) => Arc::clone(lookup),
                None => {
                    let lookup = Arc::new(OnceCell::new());
                    lookups.push((key.clone(), Arc::clone(&lookup)));
                    lookup
                }
            }
        };
        let (columns, files, keys) = key;
        let matched = lookup
            .get_or_try_init(|| async {
                let mut wanted = HashFilter::default();
                wanted.extend(keys.iter().copied());
                let matched = column_index::matching(storage, table, &columns, &files, |h| {
                    wanted.contains(h)
                });
                matched.await.map(Arc::new)
            })
            .await?;
        Ok(Arc::clone(matched))
    }

    /// A plan of `partitions` partitions that yields `picks`' rows, as
    /// `schema` (a scan's) has them; None when the files lack a column of
    /// it.
    pub async fn plan(
        &self,
        storage: &Storage,
        picks: Picks,
        schema: &SchemaRef,
        partitions: usize,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let columns: Vec<String> = {
            let mut registered = self.columns.lock().unwrap_or_else(|e| e.into_inner());
            registered.extend(schema.fields().iter().map(|f| f.name().clone()));
            registered.iter().cloned().collect()
        };
        let key: ReadKey = (picks, columns);
        let read: Read = {
            let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            match reads.iter().find(|(k, _)| *k == key) {
                Some((_, read)) => Arc::clone(read),
                None => {
                    let read = Read::default();
                    reads.push((key.clone(), Arc::clone(&read)));
                    read
                }
            }
        };
        let (picks, columns) = key;
        let batches = read
            .get_or_try_init(|| async { read_picks(storage, picks, &columns).await.map(Arc::new) })
            .await?;
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches.iter() {
            let mut projected: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
            for field in schema.fields() {
                let Some(column) = batch.column_by_name(field.name()) else {
                    return Ok(None);
                };
                projected.push(if column.data_type() == field.data_type() {
                    Arc::clone(column)
                } else {
                    cast(column, field.data_type())?
                });
            }
            out.push(RecordBatch::try_new(Arc::clone(schema), projected)?);
        }
        let mut partitioned = vec![Vec::new(); partitions.max(1)];
        partitioned[0] = out;
        Ok(Some(MemorySourceConfig::try_new_exec(
            &partitioned,
            Arc::clone(schema),
            None,
        )?))
    }
}

/// The selected rows of each file, of those of `columns` it has.
async fn read_picks(
    storage: &Storage,
    picks: Picks,
    columns: &[String],
) -> Result<Vec<RecordBatch>> {
    let columns: Arc<[String]> = columns.into();
    let per_file: Vec<Vec<RecordBatch>> = futures::stream::iter(picks)
        .map(|(path, selection)| {
            let (storage, columns) = (storage.clone(), Arc::clone(&columns));
            tokio::spawn(async move { read_file(&storage, &path, selection, &columns).await })
        })
        .buffered(PARALLEL)
        .map(|joined| joined.map_err(|e| DataFusionError::External(Box::new(e)))?)
        .try_collect()
        .await?;
    Ok(per_file.into_iter().flatten().collect())
}

async fn read_file(
    storage: &Storage,
    path: &str,
    selection: Vec<RowSelector>,
    columns: &[String],
) -> Result<Vec<RecordBatch>> {
    let reader = storage.parquet_reader(path, 0).await?;
    // The page index lets the selection skip pages it has no row in.
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, options).await?;
    let roots: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| columns.contains(f.name()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    Ok(builder
        .with_projection(mask)
        .with_row_selection(RowSelection::from(selection))
        .with_batch_size(8192)
        .build()?
        .try_collect()
        .await?)
}
