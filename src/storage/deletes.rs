//! Deleted rows: how a table version drops rows of files it shares with
//! earlier versions without rewriting them (merge-on-read, as Iceberg's and
//! Delta Lake's deletion vectors do).
//!
//! A version's pointer lists, per data file that lost rows, a delete file
//! ([`DeleteFile`]): the positions of the deleted rows in that data file,
//! stored as a Parquet file of one `row` column in the version's folder.
//! Readers turn each into a Parquet row selection (the catalog's table
//! provider, and [`super::live_rows`]), so deleted rows are never decoded
//! into a result. A delete file is written once and never changed: a later
//! version that deletes more rows of the same data file writes a new one
//! holding both.
//!
//! Who deletes: a model whose query can state its result as changes to its
//! current version hands over the positions it deletes with
//! [`PendingDeletes`] when its output ends (see `engine::DeltaTarget`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::Storage;
use crate::error::{Error, Result};

/// A data file's deleted rows, as a version's pointer records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFile {
    /// The delete file, relative to the storage root.
    pub path: String,
    /// How many rows of the data file are deleted.
    pub deleted: u64,
    /// How many rows the data file has.
    pub file_rows: u64,
}

/// Positions of deleted rows in one data file: sorted, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedRows {
    rows: Vec<u32>,
}

impl DeletedRows {
    pub fn new(mut rows: Vec<u32>) -> Self {
        rows.sort_unstable();
        rows.dedup();
        Self { rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn positions(&self) -> &[u32] {
        &self.rows
    }

    /// Both sets of rows.
    pub fn union(&self, other: &Self) -> Self {
        let mut rows = Vec::with_capacity(self.rows.len() + other.rows.len());
        let (mut a, mut b) = (self.rows.iter().peekable(), other.rows.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(&&x), Some(&&y)) if y < x => b.next(),
                (Some(_), Some(_)) => {
                    b.next();
                    a.next()
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            rows.extend(next.copied());
        }
        Self { rows }
    }

    /// The rows of a data file of `file_rows` rows that are not deleted,
    /// as a Parquet row selection over the whole file.
    pub fn selection(&self, file_rows: u64) -> RowSelection {
        let mut selectors = Vec::new();
        let mut at = 0u64;
        for &row in &self.rows {
            let row = u64::from(row);
            if row >= file_rows {
                break;
            }
            if row > at {
                selectors.push(RowSelector::select((row - at) as usize));
            }
            match selectors.last_mut() {
                Some(last) if last.skip => last.row_count += 1,
                _ => selectors.push(RowSelector::skip(1)),
            }
            at = row + 1;
        }
        if file_rows > at {
            selectors.push(RowSelector::select((file_rows - at) as usize));
        }
        RowSelection::from(selectors)
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![Field::new(
            "row",
            DataType::UInt32,
            false,
        )]))
    }

    pub fn encode(&self) -> Result<Bytes> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut out = Vec::with_capacity(self.rows.len() * 2 + 512);
        let mut writer = ArrowWriter::try_new(&mut out, Self::schema(), Some(props))?;
        for chunk in self.rows.chunks(1 << 20) {
            let column: ArrayRef = Arc::new(UInt32Array::from(chunk.to_vec()));
            writer.write(&RecordBatch::try_new(Self::schema(), vec![column])?)?;
        }
        writer.close()?;
        Ok(Bytes::from(out))
    }

    pub fn decode(bytes: Bytes, path: &str) -> Result<Self> {
        let bad = |message: String| Error::Metadata {
            path: path.to_owned(),
            message,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| bad(format!("not a delete file: {e}")))?;
        if builder.schema().fields() != Self::schema().fields() {
            return Err(bad(format!(
                "not a delete file: columns {:?}",
                builder.schema().fields()
            )));
        }
        let mut rows = Vec::new();
        for batch in builder.build()? {
            let batch = batch?;
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .ok_or_else(|| bad("row column is not UInt32".into()))?;
            rows.extend(column.values().iter().copied());
        }
        if rows.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("row positions are not sorted".into()));
        }
        Ok(Self { rows })
    }

    pub async fn load(storage: &Storage, file: &DeleteFile) -> Result<Self> {
        let bytes = storage
            .get_bytes(&file.path)
            .await?
            .ok_or_else(|| Error::Metadata {
                path: file.path.clone(),
                message: "the delete file is missing".into(),
            })?;
        let rows = Self::decode(bytes, &file.path)?;
        if rows.len() as u64 != file.deleted {
            return Err(Error::Metadata {
                path: file.path.clone(),
                message: format!(
                    "holds {} rows, its table's pointer says {}",
                    rows.len(),
                    file.deleted
                ),
            });
        }
        Ok(rows)
    }
}

/// Loads every delete file of a version: data file → (its rows, deleted).
pub async fn load_all(
    storage: &Storage,
    deletes: &BTreeMap<String, DeleteFile>,
) -> Result<BTreeMap<String, (u64, DeletedRows)>> {
    let mut out = BTreeMap::new();
    for (data, file) in deletes {
        out.insert(
            data.clone(),
            (file.file_rows, DeletedRows::load(storage, file).await?),
        );
    }
    Ok(out)
}

/// Rows a new version deletes from its base version's files, per data
/// file: `(rows in the data file, positions)`.
pub type NewDeletes = BTreeMap<String, (u64, DeletedRows)>;

/// Deletions handed over once an output stream has ended: the producer
/// [`Self::put`]s them, the publisher [`Self::take`]s them after the last
/// row is written.
#[derive(Debug, Default)]
pub struct PendingDeletes(Mutex<Option<NewDeletes>>);

impl PendingDeletes {
    pub fn put(&self, deletes: NewDeletes) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(deletes);
    }

    pub fn take(&self) -> Option<NewDeletes> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_skips_exactly_the_deleted_rows() {
        let d = DeletedRows::new(vec![5, 0, 1, 9, 5]);
        assert_eq!(d.positions(), &[0, 1, 5, 9]);
        let s = d.selection(10);
        let kept: Vec<usize> = {
            let mut at = 0;
            let mut kept = Vec::new();
            for sel in s.iter() {
                if !sel.skip {
                    kept.extend(at..at + sel.row_count);
                }
                at += sel.row_count;
            }
            assert_eq!(at, 10, "the selection covers the whole file");
            kept
        };
        assert_eq!(kept, vec![2, 3, 4, 6, 7, 8]);
        assert_eq!(DeletedRows::default().selection(3).row_count(), 3);
    }

    #[test]
    fn union_merges_and_round_trips() {
        let a = DeletedRows::new(vec![1, 4, 7]);
        let b = DeletedRows::new(vec![0, 4, 8]);
        let u = a.union(&b);
        assert_eq!(u.positions(), &[0, 1, 4, 7, 8]);
        let back = DeletedRows::decode(u.encode().unwrap(), "x").unwrap();
        assert_eq!(back, u);
        assert!(DeletedRows::decode(Bytes::from_static(b"nope"), "x").is_err());
    }
}
