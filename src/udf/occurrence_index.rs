//! The occurrence index: for each file of an occurrences table, the
//! identifier hash and row-group hash of every row, in file order. It lets
//! an incremental `resolve_identities` find the earlier rows of the touched
//! components by scanning two `u64` columns, then read just those rows of
//! the occurrence files (a Parquet row selection; pages without a selected
//! row are skipped) instead of decoding every string of history.
//!
//! Stored under `state/occurrence_index/` (see [`layout`]), one file of
//! `u64` columns ([`u64_columns`]) per occurrence file, named by the file's path and size: occurrence
//! files are immutable once published, so an index never goes stale; a
//! missing one is built by reading its file once, and indexes of files the
//! table no longer has are deleted. The hashes are those
//! [`Scope::wants`](crate::identity::incremental::Scope::wants) takes: a
//! collision only selects a row too many, never one too few.
//!
//! The hashes are not held: each lookup scans the index files a block of
//! rows at a time ([`u64_columns::Blocks`]), so the memory of a block is
//! reused for the next. Holding the index of a 17M-row history cost 270 MB
//! of fresh memory per run, which the kernel must zero first; a scan of
//! the files, in the page cache, costs a copy.
//!
//! Files are read directly with the Parquet reader, so every input column
//! must be stored in the files (as it is for tables profiledb publishes);
//! otherwise [`OccurrenceIndex::load`] answers None and the caller scans.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection};
use datafusion::parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use futures::{StreamExt, TryStreamExt};

use crate::identity::graph::Text;
use crate::identity::resolve::{INPUT_COLUMNS, identifier_hash};
use crate::storage::u64_columns::{self, Blocks};
use crate::storage::{Storage, layout};

/// How many files are read at once.
const PARALLEL: usize = 2;

/// One occurrence file's index.
struct FileIndex {
    path: String,
    size: u64,
    hashes: Blocks,
    /// Rows already handed out by [`OccurrenceIndex::select`], a bit each
    /// (empty until it first hands out rows of any file).
    taken: Vec<u64>,
}

/// Rows to read from one file: `(file, ascending row ranges)`.
pub type Pick = (usize, Vec<Range<usize>>);

pub struct OccurrenceIndex {
    storage: Storage,
    files: Vec<FileIndex>,
}

impl OccurrenceIndex {
    /// The index of `files` (relative path, size) of occurrence table
    /// `table`, building what is missing. None when the files do not store
    /// every input column (`reject_reason` may be absent).
    pub async fn load(
        storage: &Storage,
        table: &str,
        files: &[(String, u64)],
    ) -> Result<Option<Self>> {
        let dir = layout::occurrence_index_dir(table);
        let stored = storage.list(&dir).await.map_err(DataFusionError::from)?;
        let loaded: Vec<Option<FileIndex>> = futures::stream::iter(files.iter().cloned())
            .map(|(path, size)| {
                let storage = storage.clone();
                let rel = index_file(table, &path, size);
                tokio::spawn(async move {
                    let Some(hashes) = open_or_build(&storage, &rel, &path, size).await? else {
                        return Ok(None);
                    };
                    Ok::<_, DataFusionError>(Some(FileIndex {
                        path,
                        size,
                        hashes,
                        taken: Vec::new(),
                    }))
                })
            })
            .buffered(PARALLEL)
            .map(|joined| joined.map_err(|e| DataFusionError::External(Box::new(e)))?)
            .try_collect()
            .await?;
        // Indexes of files the table no longer has.
        let wanted: std::collections::HashSet<String> = files
            .iter()
            .map(|(p, s)| index_file(table, p, *s))
            .collect();
        for (rel, _) in stored {
            if !wanted.contains(&rel) {
                storage.delete(&rel).await.map_err(DataFusionError::from)?;
            }
        }
        let Some(files) = loaded.into_iter().collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        Ok(Some(Self {
            storage: storage.clone(),
            files,
        }))
    }

    pub fn rows(&self) -> usize {
        self.files.iter().map(|f| f.hashes.rows()).sum()
    }

    /// Bytes held in memory (a bit a row, once rows are handed out).
    pub fn memory_size(&self) -> usize {
        self.rows() / 8
    }

    /// The rows not handed out yet for which `wants(id hash, group hash)`
    /// holds; they are handed out only once.
    pub async fn select(&mut self, wants: impl Fn(u64, u64) -> bool) -> Result<Vec<Pick>> {
        let mut picks = Vec::new();
        for (f, file) in self.files.iter_mut().enumerate() {
            if file.taken.is_empty() {
                file.taken = vec![0; file.hashes.rows().div_ceil(64)];
            }
            let taken = &mut file.taken;
            let mut rows = Vec::new();
            file.hashes
                .each(&self.storage, &[0, 1], |start, block| {
                    let (ids, groups) = (&block[0], &block[1]);
                    for i in 0..ids.len() {
                        let r = start + i;
                        let bit = 1u64 << (r % 64);
                        if taken[r / 64] & bit == 0 && wants(ids[i], groups[i]) {
                            taken[r / 64] |= bit;
                            rows.push(r);
                        }
                    }
                })
                .await?;
            let ranges = ranges(rows.into_iter());
            if !ranges.is_empty() {
                picks.push((f, ranges));
            }
        }
        Ok(picks)
    }

    /// The rows whose identifier hash (`Hash::Identifier`) or group hash
    /// (`Hash::Group`) `wants` holds for, whether handed out or not.
    pub async fn find(&self, hash: Hash, wants: impl Fn(u64) -> bool) -> Result<Vec<Pick>> {
        let column = match hash {
            Hash::Identifier => 0,
            Hash::Group => 1,
        };
        let mut picks = Vec::new();
        for (f, file) in self.files.iter().enumerate() {
            let mut rows = Vec::new();
            file.hashes
                .each(&self.storage, &[column], |start, block| {
                    let hashes = &block[0];
                    rows.extend(
                        (0..hashes.len())
                            .filter(|&i| wants(hashes[i]))
                            .map(|i| start + i),
                    );
                })
                .await?;
            let ranges = ranges(rows.into_iter());
            if !ranges.is_empty() {
                picks.push((f, ranges));
            }
        }
        Ok(picks)
    }

    /// The path of file `f` (of a [`Pick`]).
    pub fn path(&self, f: usize) -> &str {
        &self.files[f].path
    }

    /// The picked rows, in the resolver's input columns.
    pub async fn read(&self, picks: Vec<Pick>) -> Result<Vec<RecordBatch>> {
        let batches: Vec<Vec<RecordBatch>> = futures::stream::iter(picks)
            .map(|(f, ranges)| {
                let storage = self.storage.clone();
                let (path, size) = (self.files[f].path.clone(), self.files[f].size);
                let rows = self.files[f].hashes.rows();
                tokio::spawn(async move {
                    let selection = RowSelection::from_consecutive_ranges(ranges.into_iter(), rows);
                    let batches = read_occurrences(&storage, &path, size, Some(selection)).await?;
                    batches.ok_or_else(|| {
                        DataFusionError::Execution(format!(
                            "occurrence file {path} lost a column since it was indexed"
                        ))
                    })
                })
            })
            .buffered(PARALLEL)
            .map(|joined| joined.map_err(|e| DataFusionError::External(Box::new(e)))?)
            .try_collect()
            .await?;
        Ok(batches.into_iter().flatten().collect())
    }
}

/// Which of a row's hashes a lookup is by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    Identifier,
    Group,
}

/// Ascending row numbers as ranges of consecutive rows.
pub fn ranges(rows: impl Iterator<Item = usize>) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for r in rows {
        match ranges.last_mut() {
            Some(last) if last.end == r => last.end = r + 1,
            _ => ranges.push(r..r + 1),
        }
    }
    ranges
}

/// Where the index of occurrence file `path` lives: named by its path and
/// size, as published files are never rewritten in place.
fn index_file(table: &str, path: &str, size: u64) -> String {
    layout::occurrence_index_file(table, identifier_hash(path, &size.to_string()))
}

/// A file's stored index, or one built from the file (and stored). None
/// when the file lacks an input column.
async fn open_or_build(
    storage: &Storage,
    rel: &str,
    path: &str,
    size: u64,
) -> Result<Option<Blocks>> {
    if let Some(blocks) = Blocks::open(storage, rel, &COLUMNS).await? {
        return Ok(Some(blocks));
    }
    let Some(batches) = read_occurrences(storage, path, size, None).await? else {
        return Ok(None);
    };
    let (mut ids, mut groups) = (Vec::new(), Vec::new());
    for b in &batches {
        let (source, row_key) = (Text::of(b.column(0))?, Text::of(b.column(1))?);
        let (id_type, id_value) = (Text::of(b.column(3))?, Text::of(b.column(4))?);
        for r in 0..b.num_rows() {
            ids.push(if id_type.is_null(r) || id_value.is_null(r) {
                0
            } else {
                identifier_hash(id_type.value(r), id_value.value(r))
            });
            groups.push(identifier_hash(
                source.value_or_empty(r),
                row_key.value_or_empty(r),
            ));
        }
    }
    storage
        .put_bytes(rel, encode(&ids, &groups)?)
        .await
        .map_err(DataFusionError::from)?;
    match Blocks::open(storage, rel, &COLUMNS).await? {
        Some(blocks) => Ok(Some(blocks)),
        None => Err(DataFusionError::Internal(format!(
            "the occurrence index {rel} just written does not read back"
        ))),
    }
}

const COLUMNS: [&str; 2] = ["id_hash", "group_hash"];

fn encode(ids: &[u64], groups: &[u64]) -> Result<Bytes> {
    u64_columns::encode(&COLUMNS, &[ids, groups])
}

/// The rows of an occurrence file (all, or a selection), projected to the
/// resolver's input columns (a missing `reject_reason` reads as NULL).
/// None when the file lacks another input column.
async fn read_occurrences(
    storage: &Storage,
    path: &str,
    size: u64,
    selection: Option<RowSelection>,
) -> Result<Option<Vec<RecordBatch>>> {
    let reader = storage
        .parquet_reader(path, size)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    // The page index lets a selection skip pages it has no row in.
    let options = ArrowReaderOptions::new().with_page_index_policy(if selection.is_some() {
        PageIndexPolicy::Optional
    } else {
        PageIndexPolicy::Skip
    });
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, options).await?;
    let schema = Arc::clone(builder.schema());
    let mut positions = Vec::with_capacity(INPUT_COLUMNS.len());
    for name in INPUT_COLUMNS {
        match schema.index_of(name) {
            Ok(i) => positions.push(Some(i)),
            Err(_) if name == "reject_reason" => positions.push(None),
            Err(_) => return Ok(None),
        }
    }
    let roots: Vec<usize> = positions.iter().flatten().copied().collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let mut builder = builder.with_projection(mask).with_batch_size(8192);
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    let mut sorted = roots.clone();
    sorted.sort_unstable();
    let batches: Vec<RecordBatch> = builder.build()?.try_collect().await?;
    let out = batches
        .iter()
        .map(|b| {
            // The reader returns the projected columns in file order.
            let columns: Vec<ArrayRef> = positions
                .iter()
                .map(|p| match p {
                    Some(i) => Arc::clone(b.column(sorted.binary_search(i).unwrap_or(0))),
                    None => new_null_array(&DataType::Utf8, b.num_rows()),
                })
                .collect();
            let fields: Vec<Field> = INPUT_COLUMNS
                .iter()
                .zip(&columns)
                .map(|(n, c)| Field::new(*n, c.data_type().clone(), true))
                .collect();
            Ok(RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns,
            )?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray, StringArray, TimestampMicrosecondArray};

    use super::*;
    use crate::identity::resolve::input_schema;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;

    /// An occurrence file of `rows` rows: row r is `(events, m<r/2>, r,
    /// cookie, c<r%7>)`; with `value` false it has no `id_value` column.
    fn occurrence_file(rows: usize, value: bool) -> Bytes {
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values((0..rows).map(f)))
        };
        // The resolver's input columns, without reject_reason.
        let input = input_schema();
        let mut fields: Vec<Field> = input.fields()[..4]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns = vec![
            text(&|_| "events".into()),
            text(&|r| format!("m{}", r / 2)),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(0..rows as i64).with_timezone("UTC"),
            ) as ArrayRef,
            text(&|_| "cookie".into()),
        ];
        if value {
            fields.push(input.field(4).clone());
            columns.push(text(&|r| format!("c{}", r % 7)));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    /// A memory storage holding `file` at `path`, and the file as listed.
    async fn stored(path: &str, file: Bytes) -> (Storage, Vec<(String, u64)>) {
        let storage = Storage::open("memory://").unwrap();
        let size = file.len() as u64;
        storage.put_bytes(path, file).await.unwrap();
        (storage, vec![(path.to_owned(), size)])
    }

    #[tokio::test]
    async fn selects_rows_by_hash_once_and_reads_just_them() {
        let (storage, files) = stored("data/occ/a.parquet", occurrence_file(5000, true)).await;
        let size = files[0].1;
        storage
            .put_bytes(
                &index_file("occ", "data/gone.parquet", 1),
                Bytes::from_static(b"x"),
            )
            .await
            .unwrap();
        let mut index = OccurrenceIndex::load(&storage, "occ", &files)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(index.rows(), 5000);
        // Built, stored, and the index of a file that is gone deleted.
        let stored = storage
            .list(&layout::occurrence_index_dir("occ"))
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0, index_file("occ", "data/occ/a.parquet", size));

        // Identifier c3 (rows 3, 10, 17, ...) and the group of row 4001.
        let (c3, group) = (
            identifier_hash("cookie", "c3"),
            identifier_hash("events", "m2000"),
        );
        let picks = index.select(|id, g| id == c3 || g == group).await.unwrap();
        let batches = index.read(picks).await.unwrap();
        let mut got: Vec<(String, String, i64)> = Vec::new();
        for b in &batches {
            assert_eq!(b.schema().field(5).name(), "reject_reason");
            assert_eq!(b.column(5).null_count(), b.num_rows());
            let ts = b
                .column(2)
                .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            for r in 0..b.num_rows() {
                let t = |c: usize| Text::of(b.column(c)).unwrap().value(r).to_owned();
                got.push((t(1), t(4), ts.value(r)));
            }
        }
        let want: Vec<(String, String, i64)> = (0..5000)
            .filter(|r| r % 7 == 3 || r / 2 == 2000)
            .map(|r| (format!("m{}", r / 2), format!("c{}", r % 7), r as i64))
            .collect();
        assert_eq!(got, want);
        // Rows are handed out once.
        assert!(index.select(|id, _| id == c3).await.unwrap().is_empty());

        // Loaded again: from the stored index, with the same hashes.
        let mut again = OccurrenceIndex::load(&storage, "occ", &files)
            .await
            .unwrap()
            .unwrap();
        let picks = again.select(|id, g| id == c3 || g == group).await.unwrap();
        assert_eq!(
            picks[0].1.iter().map(|r| r.len()).sum::<usize>(),
            want.len()
        );
    }

    #[tokio::test]
    async fn files_without_an_input_column_are_not_indexed() {
        let (storage, files) = stored("data/occ/b.parquet", occurrence_file(10, false)).await;
        assert!(
            OccurrenceIndex::load(&storage, "occ", &files)
                .await
                .unwrap()
                .is_none()
        );
    }
}
